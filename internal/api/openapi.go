package api

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes every route of the API (OpenAPI 3.1). It is
// kept by hand beside the handlers; TestOpenAPIDocumentsEveryRoute checks
// it against the routes the server registers, their parameters and the
// statuses they answer.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the API's OpenAPI 3.1 document.
func OpenAPI() []byte { return openAPIDocument }

// openAPI is GET /openapi.json: the document, public like the API docs.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeRawJSON(w, http.StatusOK, openAPIDocument)
	return nil
}
