package netns

import "testing"

func BenchmarkDiscover(b *testing.B) {
	b.Run("this host", func(b *testing.B) { benchmarkDiscover(b) })
	b.Run("200 more namespaces", func(b *testing.B) {
		requireRoot(b)
		holdNamespaces(b, 200)
		benchmarkDiscover(b)
	})
}

func benchmarkDiscover(b *testing.B) {
	var d Discovery
	for b.Loop() {
		var err error
		if d, err = Discover("/proc", "/run/netns", 1<<20, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(d.Namespaces)), "namespaces")
}

func BenchmarkDo(b *testing.B) {
	b.Run("host", func(b *testing.B) {
		benchmarkDo(b, discoverAll(b, nil).Namespaces[0])
	})
	b.Run("foreign", func(b *testing.B) {
		requireRoot(b)
		held := holdNamespaces(b, 1)
		benchmarkDo(b, byPID(b, discoverAll(b, nil), held)[0])
	})
}

func benchmarkDo(b *testing.B, ns Namespace) {
	fn := func() error { return nil }
	for b.Loop() {
		if err := Do(b.Context(), ns, fn); err != nil {
			b.Fatal(err)
		}
	}
}
