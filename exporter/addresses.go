package exporter

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxLocalAddresses caps the addresses with a series of their own: a host
// has a few, a router or a Kubernetes node with many service IPs more.
const MaxLocalAddresses = 16

// AddressesCollector exports the addresses of the network namespace's
// interfaces, so that a Prometheus over many hosts can tell which host a
// destination address of another host's sockets is (tcpadvisor advise
// --prometheus.url joins the two ends of a flow by it). It reads the
// kernel's local routing table (net/fib_trie) and net/if_inet6: one file
// each, whatever the number of sockets.
type AddressesCollector struct {
	netDir string
	info   *prometheus.Desc
	count  *prometheus.Desc
}

// NewAddressesCollector returns a collector reading fib_trie and if_inet6
// under netDir (/proc/net, or /proc/thread-self/net for the calling
// thread's network namespace), with constLabels on every series.
func NewAddressesCollector(netDir string, constLabels prometheus.Labels) *AddressesCollector {
	return &AddressesCollector{
		netDir: netDir,
		info: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "local_address_info"),
			fmt.Sprintf("1 for each address of the network namespace's interfaces, loopback and link-local excluded, the first %d in address order: what other hosts' sockets name as destination_address when they connect here.", MaxLocalAddresses),
			[]string{"address"}, constLabels),
		count: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "local_addresses"),
			fmt.Sprintf("Addresses of the network namespace's interfaces, loopback and link-local excluded: more than the tcpadvisor_local_address_info series when some were past the cap of %d.", MaxLocalAddresses),
			nil, constLabels),
	}
}

// Update reads the addresses; a kernel without IPv6 has no if_inet6, which
// is no failure.
func (c *AddressesCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	if c.netDir == "" {
		return errors.New("read local addresses: no proc filesystem to read them from")
	}
	v4, err := readFibTrieLocal(filepath.Join(c.netDir, "fib_trie"))
	if err != nil {
		return err
	}
	v6, err := readIfInet6(filepath.Join(c.netDir, "if_inet6"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	addrs := slices.Concat(v4, v6)
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	addrs = slices.Compact(addrs)
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(len(addrs)))
	for _, a := range addrs[:min(len(addrs), MaxLocalAddresses)] {
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, a.String())
	}
	return nil
}

// readFibTrieLocal returns the IPv4 addresses of the interfaces: in
// fib_trie, a leaf "|-- ADDRESS" followed by "/32 host LOCAL".
func readFibTrieLocal(path string) ([]netip.Addr, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read local addresses: %w", err)
	}
	defer f.Close()
	var addrs []netip.Addr
	var leaf netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "|-- "); ok {
			leaf, _ = netip.ParseAddr(rest)
			continue
		}
		if line == "/32 host LOCAL" && leaf.IsValid() && keepAddress(leaf) {
			addrs = append(addrs, leaf)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read local addresses: %s: %w", path, err)
	}
	return addrs, nil
}

// readIfInet6 returns the IPv6 addresses of the interfaces, from lines of
// "ADDRESS(32 hex digits) IFINDEX PREFIXLEN SCOPE FLAGS NAME".
func readIfInet6(path string) ([]netip.Addr, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read local addresses: %w", err)
	}
	var addrs []netip.Addr
	for line := range strings.Lines(string(content)) {
		fields := strings.Fields(line)
		if len(fields) < 6 {
			continue
		}
		raw, err := hex.DecodeString(fields[0])
		if err != nil || len(raw) != 16 {
			return nil, fmt.Errorf("read local addresses: %s: bad address %q", path, fields[0])
		}
		if a := netip.AddrFrom16([16]byte(raw)); keepAddress(a) {
			addrs = append(addrs, a)
		}
	}
	return addrs, nil
}

// keepAddress reports whether another host can reach this one at a: not
// loopback, not link-local (the same on every host's link).
func keepAddress(a netip.Addr) bool {
	return !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsUnspecified() && !a.IsMulticast()
}
