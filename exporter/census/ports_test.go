package census_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tcpadvisor/tcpadvisor/exporter/census"
)

func TestParseReservedPorts(t *testing.T) {
	tests := []struct {
		in      string
		want    []uint16
		count   int
		wantErr string
	}{
		{in: "", count: 0},
		{in: "\n", count: 0},
		{in: "8080", want: []uint16{8080}, count: 1},
		{in: "8080,9000-9010", want: []uint16{8080, 9000, 9005, 9010}, count: 12},
		{in: "40000-40000,1", want: []uint16{1, 40000}, count: 2},
		{in: "0-65535", want: []uint16{0, 65535}, count: 65536},
		{in: "9010-9000", wantErr: "runs backwards"},
		{in: "80,x", wantErr: `"x" is not a port number`},
		{in: "70000", wantErr: "is not a port number"},
		{in: "1-", wantErr: "is not a port number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			set, err := census.ParseReservedPorts(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.want {
				if !set.Has(p) {
					t.Errorf("port %d not in the set", p)
				}
			}
			if set.Len() != tt.count {
				t.Errorf("set holds %d ports, want %d", set.Len(), tt.count)
			}
		})
	}
}

func TestEphemeralRange(t *testing.T) {
	low, high, err := census.ParsePortRange("32768\t60999\n")
	if err != nil {
		t.Fatal(err)
	}
	reserved, _ := census.ParseReservedPorts("22,32768,40000-40009,61000")
	r := census.EphemeralRange{Low: low, High: high, Reserved: reserved}
	if r.Size() != 28232 || r.ReservedInRange() != 11 || r.Usable() != 28221 {
		t.Errorf("size %d, reserved in range %d, usable %d; want 28232, 11, 28221", r.Size(), r.ReservedInRange(), r.Usable())
	}
	for port, want := range map[uint16]bool{32767: false, 32768: false, 32769: true, 40005: false, 60999: true, 61000: false} {
		if got := r.Contains(port); got != want {
			t.Errorf("Contains(%d) = %v, want %v", port, got, want)
		}
	}
	for _, bad := range []string{"", "1", "1 2 3", "60999 32768", "a b", "1 65536"} {
		if _, _, err := census.ParsePortRange(bad); err == nil {
			t.Errorf("ParsePortRange(%q) accepted", bad)
		}
	}
}

// FuzzParseReservedPorts checks that any input parses or fails cleanly, and
// that what parses round-trips through the set.
func FuzzParseReservedPorts(f *testing.F) {
	for _, seed := range []string{"", "8080", "8080,9000-9010", "0-65535", "1-0", ",", "1,,2", " 5 - 7 "} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := census.ParseReservedPorts(s)
		if err != nil {
			return
		}
		if set.Len() > 65536 {
			t.Fatalf("%d ports in a set of TCP ports", set.Len())
		}
	})
}

func TestPortSetRanges(t *testing.T) {
	set, err := census.ParseReservedPorts("0,8080,9000-9010,9011,65535")
	if err != nil {
		t.Fatal(err)
	}
	want := []census.PortRange{{0, 0}, {8080, 8080}, {9000, 9011}, {65535, 65535}}
	if got := set.Ranges(); !slices.Equal(got, want) {
		t.Errorf("Ranges() = %v, want %v", got, want)
	}
	var empty census.PortSet
	if got := empty.Ranges(); len(got) != 0 {
		t.Errorf("empty set: Ranges() = %v", got)
	}
}

// FuzzParsePortRange checks that any net.ipv4.ip_local_port_range content
// parses or fails cleanly, and that what parses is an ordered range.
func FuzzParsePortRange(f *testing.F) {
	for _, seed := range []string{"32768\t60999\n", "1024 65535", "60999 32768", "1", "a b", " 0 0 ", "65536 1", "1 2 3"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		low, high, err := census.ParsePortRange(s)
		if err == nil && low > high {
			t.Fatalf("ParsePortRange(%q) = %d-%d, a range that runs backwards", s, low, high)
		}
	})
}
