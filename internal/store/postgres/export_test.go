package postgres

// SetTextWindow sets how many events free-text search checks one by one
// before it asks the GIN index, and returns a function restoring it.
func SetTextWindow(n int) (restore func()) {
	old := textWindow
	textWindow = n
	return func() { textWindow = old }
}
