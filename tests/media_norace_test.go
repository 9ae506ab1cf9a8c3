//go:build !race

package tests

// raceEnabled is set when the race detector runs (see media_race_test.go).
const raceEnabled = false
