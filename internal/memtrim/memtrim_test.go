package memtrim

import "testing"

func TestTrimmerDecides(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name string
		// allocated is the cumulative count at each sample, starting
		// from 0; want says which samples trim.
		allocated []uint64
		want      []bool
	}{
		{"idle from the start", []uint64{1 * mib, 2 * mib, 3 * mib}, []bool{false, false, false}},
		{"busy then quiet", []uint64{100 * mib, 200 * mib, 201 * mib, 202 * mib}, []bool{false, false, true, false}},
		{"busy, quiet, busy, quiet", []uint64{100 * mib, 101 * mib, 300 * mib, 302 * mib}, []bool{false, true, false, true}},
		{"a little work is not a spell", []uint64{30 * mib, 31 * mib, 60 * mib, 61 * mib}, []bool{false, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &trimmer{}
			for i, a := range tt.allocated {
				if got := tr.sample(a); got != tt.want[i] {
					t.Errorf("sample %d (%d MiB): trim = %v, want %v", i, a/mib, got, tt.want[i])
				}
			}
		})
	}
}
