package git

// SetMaxPacks sets how many packs a cache holds before Fetch repacks it,
// for the duration of a test.
func SetMaxPacks(n int) (restore func()) {
	old := maxPacks
	maxPacks = n
	return func() { maxPacks = old }
}
