//go:build race

package main

// raceEnabled: the tests run under the race detector, whose shadow
// memory multiplies what a process holds; memory bounds scale with it.
const raceEnabled = true
