package cliflag

import (
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

// TestErrorsNameTheFlag parses bad values of every kind of flag: each error
// names the flag, the value and what is wanted.
func TestErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		arg, want string
	}{
		{"--n=0", `--n="0": want a whole number of at least 1`},
		{"--d=-1s", `--d="-1s": want a positive duration such as 10s or 500ms`},
		{"--f=1.5", `--f="1.5": want a number above 0 and at most 1, such as 0.1`},
		{"--u=ftp://x", `--u="ftp://x": want an http:// or https:// URL such as http://127.0.0.1:9093`},
		{"--u=http://", `--u="http://": want an http:// or https:// URL`},
	} {
		app := kingpin.New("test", "")
		Int(app, "n", "", 1, 1)
		Duration(app, "d", "", time.Second)
		Fraction(app, "f", "", 1)
		URLs(app, "u", "")
		_, err := app.Parse([]string{tc.arg})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.arg, err, tc.want)
		}
	}
}

// TestRepeatable keeps every value of a repeatable flag, in order, with the
// trailing slash of URLs removed.
func TestRepeatable(t *testing.T) {
	app := kingpin.New("test", "")
	urls := URLs(app, "u", "")
	n := Int(app, "n", "", 7, 1)
	if _, err := app.Parse([]string{"--u=http://a:1/", "--u=https://b:2"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(*urls, " "); got != "http://a:1 https://b:2" {
		t.Errorf("urls = %q", got)
	}
	if *n != 7 {
		t.Errorf("default n = %d, want 7", *n)
	}
}
