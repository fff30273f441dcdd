-- Exports (package export) keep nothing in this file. On SQLite the exports
-- table and River's job tables live in a file of their own beside it,
-- <name>.exports.db (exports_migrations/, and rivermigrate): River polls and
-- writes, and here it would contend with ingest for this file's single
-- writer connection; there, creating an export and inserting its job is one
-- transaction. This migration holds the number 00004 in step with
-- PostgreSQL's migrations/00004_exports.sql, which creates the table in the
-- main database.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
