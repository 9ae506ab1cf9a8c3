//go:build race

package tests

// raceEnabled is set when the race detector runs: it slows the server
// several times, so the media throughput test keeps its byte checks and
// drops its time limit then.
const raceEnabled = true
