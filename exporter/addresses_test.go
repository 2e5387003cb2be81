package exporter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// addressesFixture writes a net/ directory with fib_trie listing the IPv4
// addresses and if_inet6 the IPv6 lines.
func addressesFixture(t *testing.T, v4 []string, v6 []string) string {
	t.Helper()
	dir := t.TempDir()
	var trie strings.Builder
	trie.WriteString("Local:\n  +-- 0.0.0.0/0 3 0 5\n")
	for _, a := range v4 {
		fmt.Fprintf(&trie, "     |-- %s\n        /32 host LOCAL\n     |-- %s.255\n        /32 link BROADCAST\n", a, a[:strings.LastIndex(a, ".")])
	}
	if err := os.WriteFile(filepath.Join(dir, "fib_trie"), []byte(trie.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if v6 != nil {
		if err := os.WriteFile(filepath.Join(dir, "if_inet6"), []byte(strings.Join(v6, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestAddressesCollector(t *testing.T) {
	var many []string
	for i := range MaxLocalAddresses + 4 {
		many = append(many, fmt.Sprintf("198.18.%d.1", i))
	}
	cases := []struct {
		name      string
		v4, v6    []string
		wantCount int
		want      []string
	}{
		{"loopback and broadcast left out", []string{"127.0.0.1", "198.18.0.2"}, nil, 1, []string{"198.18.0.2"}},
		{"IPv6 global only", []string{"198.18.0.2"}, []string{
			"00000000000000000000000000000001 01 80 10 80 lo",
			"fd000000000000000000000000000002 04 40 00 82 eth0",
			"fe8000000000000000fc00fffe000001 04 40 20 80 eth0",
		}, 2, []string{"198.18.0.2", "fd00::2"}},
		{"the same address listed twice counts once", []string{"198.18.0.2", "198.18.0.2"}, nil, 1, []string{"198.18.0.2"}},
		{"capped", many, nil, len(many), many[:0]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			collector := NewAddressesCollector(addressesFixture(t, c.v4, c.v6), nil)
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectorAdapter{collector})
			if got := testutil.ToFloat64(gaugeOf(t, reg, "tcpadvisor_local_addresses")); int(got) != c.wantCount {
				t.Errorf("tcpadvisor_local_addresses = %v, want %d", got, c.wantCount)
			}
			infos := labelValues(t, reg, "tcpadvisor_local_address_info", "address")
			if c.name == "capped" {
				if len(infos) != MaxLocalAddresses {
					t.Errorf("%d info series, want the cap %d", len(infos), MaxLocalAddresses)
				}
				return
			}
			if strings.Join(infos, ",") != strings.Join(c.want, ",") {
				t.Errorf("addresses %v, want %v", infos, c.want)
			}
		})
	}
	if err := NewAddressesCollector(t.TempDir(), nil).Update(context.Background(), make(chan prometheus.Metric, 100)); err == nil {
		t.Error("no fib_trie: no error")
	}
}

// collectorAdapter makes a Collector a prometheus.Collector for a test.
type collectorAdapter struct{ c Collector }

func (a collectorAdapter) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(a, ch) }
func (a collectorAdapter) Collect(ch chan<- prometheus.Metric) {
	a.c.Update(context.Background(), ch)
}

func gaugeOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.Metric) == 1 {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: name}, func() float64 { return f.Metric[0].GetGauge().GetValue() })
		}
	}
	t.Fatalf("no single series of %s", name)
	return nil
}

func labelValues(t *testing.T, reg *prometheus.Registry, name, label string) []string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == label {
					values = append(values, l.GetValue())
				}
			}
		}
	}
	return values
}
