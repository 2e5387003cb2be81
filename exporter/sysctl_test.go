package exporter

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/procfs"
)

// TestReservedRangesAreCapped: a reserved-port list of more ranges than the
// cap exports the cap's number of range series, lowest first, and the count
// of all its ranges, so that a reader knows the list was cut. The list is
// read whole, far past the 128 bytes procfs reads of a sysctl.
func TestReservedRangesAreCapped(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/proc")); err != nil {
		t.Fatal(err)
	}
	var ports []string
	for p := 1024; p < 1024+2*100; p += 2 {
		ports = append(ports, strconv.Itoa(p))
	}
	path := filepath.Join(dir, "sys/net/ipv4/ip_local_reserved_ports")
	if err := os.WriteFile(path, []byte(strings.Join(ports, ",")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := procfs.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := New(map[string]Collector{"sysctl": NewSysctlCollector(fs, dir, nil)}, 2*time.Second, discard)
	want := ""
	for p := 1024; p < 1024+2*maxReservedRanges; p += 2 {
		want += fmt.Sprintf(`tcpadvisor_ephemeral_ports_reserved_range_info{first="%d",last="%d"} 1`+"\n", p, p)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader("# HELP tcpadvisor_ephemeral_ports_reserved_range_info 1 for each range of ports first-last (inclusive) listed in net.ipv4.ip_local_reserved_ports, lowest first; the first 64 ranges only.\n# TYPE tcpadvisor_ephemeral_ports_reserved_range_info gauge\n"+want),
		"tcpadvisor_ephemeral_ports_reserved_range_info"); err != nil {
		t.Error(err)
	}
	want = "# HELP tcpadvisor_ephemeral_ports_reserved_ranges Ranges of ports (a lone port is one) in net.ipv4.ip_local_reserved_ports: more than the series of tcpadvisor_ephemeral_ports_reserved_range_info when the list was cut.\n" +
		"# TYPE tcpadvisor_ephemeral_ports_reserved_ranges gauge\ntcpadvisor_ephemeral_ports_reserved_ranges 100\n"
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "tcpadvisor_ephemeral_ports_reserved_ranges"); err != nil {
		t.Error(err)
	}
}
