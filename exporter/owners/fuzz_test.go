package owners

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzUnitFromCgroupPath checks that any cgroup path, which a delegated
// user can choose, names a unit that is a valid, bounded label value.
func FuzzUnitFromCgroupPath(f *testing.F) {
	for _, seed := range []string{
		"/", "/system.slice/nginx.service", `/user.slice/q"x{y="1"}.service`,
		"/kubepods.slice/kubepods-pod6f1c3c2e_9a57_4b1e_8d9e_2b4f0c7a1d35.slice",
		"/kubepods/burstable/pod6f1c3c2e-9a57-4b1e-8d9e-2b4f0c7a1d35/x",
		"/system.slice/docker-.scope", "/a\xff\xfe/b\x1b[31m", "//docker//",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		unit := UnitFromCgroupPath(path)
		if !utf8.ValidString(unit) || len(unit) > maxLabelLen {
			t.Fatalf("UnitFromCgroupPath(%q) = %q: not a valid label value of at most %d bytes", path, unit, maxLabelLen)
		}
		if strings.ContainsFunc(unit, unicode.IsControl) {
			t.Fatalf("UnitFromCgroupPath(%q) = %q holds a control character", path, unit)
		}
		if unit == "" {
			t.Fatalf("UnitFromCgroupPath(%q) is empty", path)
		}
	})
}

// FuzzParseStat checks that any /proc/PID/stat content, whose process name
// its owner chooses, parses or fails cleanly, and that the name parsed is
// what lies between the first '(' and the last ')'.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4242 (nginx) S 1 4242 4242 0 -1 4194560 300 0 0 0 1 2 0 0 20 0 1 0 123456 10000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"))
	f.Add([]byte("1 (a) b) c (d)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99"))
	f.Add([]byte("1 ()"))
	f.Add([]byte(")("))
	f.Fuzz(func(t *testing.T, b []byte) {
		comm, _, ok := parseStat(b)
		if ok && len(comm) > len(b) {
			t.Fatalf("parseStat(%q) gave a name longer than its input", b)
		}
	})
}

// FuzzParseSocketLink checks the fd link parser against strconv: what it
// accepts is "socket:[N]" with N a 32-bit inode number.
func FuzzParseSocketLink(f *testing.F) {
	for _, seed := range []string{"socket:[12345]", "socket:[]", "socket:[4294967296]", "pipe:[1]", "socket:[-1]", "socket:[+1]"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, link string) {
		ino, ok := parseSocketLink([]byte(link))
		if !ok {
			return
		}
		digits, found := strings.CutPrefix(strings.TrimSuffix(link, "]"), "socket:[")
		n, err := strconv.ParseUint(digits, 10, 32)
		if !found || err != nil || uint32(n) != ino || strings.ContainsAny(digits, "+-") {
			t.Fatalf("parseSocketLink(%q) = %d", link, ino)
		}
	})
}

// FuzzParsePID checks the /proc directory name parser against strconv: a
// name it accepts is all digits and a positive 32-bit PID.
func FuzzParsePID(f *testing.F) {
	for _, seed := range []string{"1", "4242", "self", "0", "2147483648", "0042", "", "+1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		pid, ok := parsePID([]byte(name))
		if !ok {
			return
		}
		n, err := strconv.ParseInt(name, 10, 32)
		if err != nil || int32(n) != pid || pid <= 0 || strings.ContainsAny(name, "+-") {
			t.Fatalf("parsePID(%q) = %d", name, pid)
		}
	})
}

// FuzzParseCapEff checks that any /proc/PID/status content parses or fails
// cleanly.
func FuzzParseCapEff(f *testing.F) {
	f.Add([]byte("Name:\tx\nCapEff:\t000001ffffffffff\n"))
	f.Add([]byte("CapEff:\tzz\n"))
	f.Add([]byte("CapEff:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseCapEff(b)
	})
}
