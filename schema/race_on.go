//go:build race

package schema

// raceEnabled: molt was built with the race detector, whose shadow memory
// multiplies what a process holds.
const raceEnabled = true
