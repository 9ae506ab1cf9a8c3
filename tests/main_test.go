package tests

import (
	"flag"
	"os"
	"strconv"
	"testing"
)

// parallelTests is how many tests of this package run at once unless
// -parallel says otherwise: more than the cores (go test's default), since
// an integration test spends most of its time waiting on the network, the
// disk and timers rather than on the CPU.
const parallelTests = 6

// TestMain runs the package's tests parallelTests at a time, unless the
// command line sets -parallel.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", strconv.Itoa(parallelTests)); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
