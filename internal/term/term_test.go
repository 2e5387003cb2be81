package term

import (
	"os"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"redis-server":           "redis-server",
		"café ×3.9 → ok":         "café ×3.9 → ok",
		"\x1b[31mred\x1b[0m":     `\x1b[31mred\x1b[0m`,
		"two\nlines\r":           `two\nlines\r`,
		"tab\there":              `tab\there`,
		"del\x7f":                `del\x7f`,
		"c1\u009bcsi":            `c1\u009bcsi`,
		"bidi\u202eevil":         `bidi\u202eevil`,
		"bad utf8 \xff":          `bad utf8 \xff`,
		"q\"x{y=\"1\"}.service":  "q\"x{y=\"1\"}.service",
		"bell\a and backspace\b": `bell\a and backspace\b`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrintableText(t *testing.T) {
	in := "[warning] host\x1b[2J (red\x1b[31m): pool\n\tkept\tas is\r\n"
	if got, want := PrintableText(in), "[warning] host\\x1b[2J (red\\x1b[31m): pool\n\tkept\tas is\\r\n"; got != want {
		t.Errorf("PrintableText(%q) = %q, want %q", in, got, want)
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		text  string
		width int
		want  []string
	}{
		{"one two three four", 9, []string{"one two", "three", "four"}},
		{"a-very-long-word fits nowhere", 6, []string{"a-very-long-word", "fits", "nowhere"}},
		{"  spaces   collapse  ", 80, []string{"spaces collapse"}},
		{"×3.9 TPS → pool", 8, []string{"×3.9 TPS", "→ pool"}},
		{"", 10, nil},
	}
	for _, tt := range tests {
		if got := Wrap(tt.text, tt.width); !slices.Equal(got, tt.want) {
			t.Errorf("Wrap(%q, %d) = %q, want %q", tt.text, tt.width, got, tt.want)
		}
	}
}

func TestStyleOfAFileIsPlain(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := StyleOf(f); got != Plain {
		t.Errorf("StyleOf(a file) = %+v, want %+v", got, Plain)
	}
}

// openTerminal returns the two ends of a new pseudo-terminal whose window
// is cols columns wide.
func openTerminal(t *testing.T, cols uint16) *os.File {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: cols}); err != nil {
		t.Fatal(err)
	}
	return pts
}

func TestStyleOfATerminal(t *testing.T) {
	pts := openTerminal(t, 132)
	t.Setenv("NO_COLOR", "")
	if got, want := StyleOf(pts), (Style{Width: 132, Color: true}); got != want {
		t.Errorf("StyleOf(a 132-column terminal) = %+v, want %+v", got, want)
	}
	t.Setenv("NO_COLOR", "1")
	if got, want := StyleOf(pts), (Style{Width: 132}); got != want {
		t.Errorf("with NO_COLOR=1: %+v, want %+v", got, want)
	}
}
