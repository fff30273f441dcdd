package postgres

// SetCheckWindow sets how many events a search with free text or a lone
// target checks one by one before it changes plan, and returns a function
// restoring it.
func SetCheckWindow(n int) (restore func()) {
	old := checkWindow
	checkWindow = n
	return func() { checkWindow = old }
}
