// Package cliflag holds the kingpin flag values of tcpadvisor whose parse
// errors name the flag, the value given and what is wanted: kingpin's own
// messages name neither. Each package that has flags (the exporter's
// collectors, the pipeline's rules, the commands) adds them with these,
// next to its defaults.
package cliflag

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

// Group is what kingpin's Application and CmdClause share: flags can be
// added to the application or to one command.
type Group interface {
	Flag(name, help string) *kingpin.FlagClause
}

// Value is a flag value that parse checks; its error names the flag.
type Value[T any] struct {
	Flag  string
	Dst   *T
	Parse func(string) (T, bool)
	Want  string
	// Add, when set, makes the value repeatable: each value given is
	// passed to it instead of being stored in Dst.
	Add func(T)
}

// Set parses s, as kingpin calls it.
func (v *Value[T]) Set(s string) error {
	x, ok := v.Parse(s)
	if !ok {
		return fmt.Errorf("--%s=%q: want %s", v.Flag, s, v.Want)
	}
	if v.Add != nil {
		v.Add(x)
	} else {
		*v.Dst = x
	}
	return nil
}

func (v *Value[T]) String() string {
	if v.Dst == nil {
		return ""
	}
	return fmt.Sprint(*v.Dst)
}

// repeatable marks a Value as repeatable for kingpin.
type repeatable[T any] struct{ *Value[T] }

func (repeatable[T]) IsCumulative() bool { return true }

// Int adds an integer flag of at least min.
func Int(g Group, name, help string, def, min int) *int {
	dst := new(int)
	g.Flag(name, help).Default(strconv.Itoa(def)).SetValue(&Value[int]{
		Flag: name, Dst: dst,
		Want: fmt.Sprintf("a whole number of at least %d", min),
		Parse: func(s string) (int, bool) {
			n, err := strconv.Atoi(s)
			return n, err == nil && n >= min
		},
	})
	return dst
}

// Duration adds a positive duration flag.
func Duration(g Group, name, help string, def time.Duration) *time.Duration {
	dst := new(time.Duration)
	g.Flag(name, help).Default(def.String()).SetValue(&Value[time.Duration]{
		Flag: name, Dst: dst,
		Want: "a positive duration such as 10s or 500ms",
		Parse: func(s string) (time.Duration, bool) {
			d, err := time.ParseDuration(s)
			return d, err == nil && d > 0
		},
	})
	return dst
}

// Repeatable adds a repeatable flag whose every value must parse.
func Repeatable[T any](g Group, name, help, placeholder, want string, parse func(string) (T, bool)) *[]T {
	dst := new([]T)
	g.Flag(name, help).PlaceHolder(placeholder).SetValue(repeatable[T]{&Value[T]{
		Flag: name, Want: want, Parse: parse,
		Add: func(x T) { *dst = append(*dst, x) },
	}})
	return dst
}

// Fraction adds a flag for a number in (0, 1].
func Fraction(g Group, name, help string, def float64) *float64 {
	dst := new(float64)
	g.Flag(name, help).Default(strconv.FormatFloat(def, 'g', -1, 64)).SetValue(&Value[float64]{
		Flag: name, Dst: dst,
		Want:  "a number above 0 and at most 1, such as 0.1",
		Parse: ParseFraction,
	})
	return dst
}

// ParseFraction parses a number in (0, 1].
func ParseFraction(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil && f > 0 && f <= 1
}

// URLs adds a repeatable flag of http(s) URLs.
func URLs(g Group, name, help string) *[]string {
	return Repeatable(g, name, help, "URL", "an http:// or https:// URL such as http://127.0.0.1:9093",
		func(s string) (string, bool) {
			u, err := url.Parse(s)
			return strings.TrimRight(s, "/"), err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
		})
}
