package render

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tcpadvisor/tcpadvisor/advisor"
	"github.com/tcpadvisor/tcpadvisor/exporter/owners"
	"github.com/tcpadvisor/tcpadvisor/internal/term"
)

var update = flag.Bool("update", false, "rewrite the golden files from this run")

func sampleReport() advisor.Report {
	since := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	return advisor.Report{
		GeneratedAt: since.Add(10 * time.Minute),
		Advice: []advisor.Advice{{
			ID: advisor.PortPressure, Alert: "TcpadvisorEphemeralPortPressure", Severity: "critical", State: "firing", Since: since,
			Target:      map[string]string{"source_address": "10.0.0.1", "destination_address": "10.0.0.5", "destination_port": "6379"},
			Summary:     "Ephemeral ports toward 10.0.0.5:6379 at 93%",
			Description: "26,250 of 28,232 usable ports are held toward 10.0.0.5:6379.",
			Evidence: []advisor.Evidence{
				{Name: "TIME_WAIT sockets toward 10.0.0.5:6379", Value: 26248, Query: `tcpadvisor_outbound_sockets{state="time_wait"}`},
				{Name: "port-pressure ratio toward 10.0.0.5:6379", Value: 0.9298, Query: `tcpadvisor_outbound_port_pressure_ratio`},
			},
			Recommendation: "The ephemeral ports toward 10.0.0.5:6379 are running out. Open fewer connections: a pool.",
			Fixes:          []advisor.Fix{{Title: "sysctl net.ipv4.tcp_tw_reuse", Language: "sysctl", Text: "# relief (now 2)\nnet.ipv4.tcp_tw_reuse = 1\n"}},
			Sysctls:        []advisor.SysctlChange{{Name: "net.ipv4.tcp_tw_reuse", Value: "1", Current: "2", Reason: "relief"}},
			RunbookURL:     "https://github.com/tcpadvisor/tcpadvisor/blob/main/docs/advice.md#port-pressure",
		}},
		Pending: []advisor.Advice{{
			ID: advisor.UpstreamKeepalive, Alert: "TcpadvisorServerSideChurn", Severity: "warning", State: "pending", Since: since,
			Target: map[string]string{"port": "5000"}, Summary: "Service port 5000: <script>TIME_WAIT</script> from 1 peer",
			Evidence: []advisor.Evidence{}, Fixes: []advisor.Fix{}, Sysctls: []advisor.SysctlChange{},
		}},
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (rerun with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (rerun with -update if meant):\n%s", path, got)
	}
}

// TestJSONSchema pins the JSON that `tcpadvisor advise --output json` and
// GET /advice?format=json give: programs parse it.
func TestJSONSchema(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/report.json", b.Bytes())
	var back advisor.Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back.Advice) != 1 || back.Advice[0].Evidence[1].Value != 0.9298 {
		t.Errorf("the JSON does not read back: %v %+v", err, back)
	}
}

// hostileReport is sampleReport with names as a local user can craft them:
// a process named with prctl, a cgroup, a label value, holding terminal
// escapes and line breaks.
func hostileReport() advisor.Report {
	r := sampleReport()
	r.Advice[0].Owner = &advisor.Owner{Owner: owners.Owner{Unit: "evil\x1b]0;pwned\a.service", Process: "\x1b[31mredis\x1b[0m\nfake line"}, Sockets: 26250}
	r.Advice[0].Target["destination_address"] = "10.0.0.5\x1b[2J"
	r.Advice[0].Client = &advisor.Owner{Owner: owners.Owner{Unit: "app.service", Process: "app\x1b[1m"}, Sockets: 26250}
	r.Advice[0].Server = &advisor.Service{Address: "10.0.0.5", Port: "6379", Name: "redis\x1b[5m", Protocol: "redis", KnownBy: "listener"}
	r.Advice[0].Alerts = []string{"TcpadvisorEphemeralPortPressure", "TcpadvisorConnectionPerRequest"}
	r.Advice[0].Summary = "Ephemeral ports toward 10.0.0.5\x1b[2J:6379 at 93%\r"
	r.Advice[0].Fixes[0].Text += "# \u202eevil\n\tindented\n"
	return r
}

func TestText(t *testing.T) {
	var b bytes.Buffer
	if err := Text(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/report.txt", b.Bytes())
	checkWidth(t, b.String(), term.DefaultWidth)

	b.Reset()
	Text(&b, advisor.Report{})
	if got := b.String(); got != "tcpadvisor: no advice: nothing to change.\n" {
		t.Errorf("empty report reads %q", got)
	}
}

// TestStyledText checks the layout on a terminal: prose fits its width at
// 60 and 120 columns, fixes are kept as they are, and only a terminal with
// colour gets colour.
func TestStyledText(t *testing.T) {
	for _, style := range []term.Style{{Width: 60}, {Width: 120, Color: true}} {
		var b bytes.Buffer
		if err := StyledText(&b, sampleReport(), style); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		checkWidth(t, out, style.Width)
		if !strings.Contains(out, "    | net.ipv4.tcp_tw_reuse = 1\n") {
			t.Errorf("%d columns: the fix is not kept as it is:\n%s", style.Width, out)
		}
		if colored := strings.Contains(out, "\x1b[1;31m[critical]\x1b[0m"); colored != style.Color {
			t.Errorf("%+v: coloured severity %v, want %v:\n%s", style, colored, style.Color, out)
		}
		if style.Color {
			golden(t, "testdata/report-color-120.txt", b.Bytes())
		}
	}
}

// TestTextQuotesControlCharacters checks that no control character from
// a name or a label value reaches the terminal: each shows as an escape.
func TestTextQuotesControlCharacters(t *testing.T) {
	for _, style := range []term.Style{term.Plain, {Width: 100, Color: true}} {
		var b bytes.Buffer
		if err := StyledText(&b, hostileReport(), style); err != nil {
			t.Fatal(err)
		}
		out := strings.ReplaceAll(b.String(), "\x1b[1;31m", "")
		out = strings.ReplaceAll(out, "\x1b[1;33m", "")
		out = strings.ReplaceAll(out, "\x1b[0m", "")
		for _, r := range out {
			if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
				t.Errorf("%+v: control character %U in the text:\n%q", style, r, out)
				break
			}
		}
		for _, want := range []string{`evil\x1b]0;pwned\a.service (process \x1b[31mredis\x1b[0m\nfake line)`, `10.0.0.5\x1b[2J`, `# \u202eevil`, `at 93%\r`, "    |     indented\n", `Client: app.service (process app\x1b[1m), 26250 sockets`,
			`Server: redis\x1b[5m (redis) at 10.0.0.5:6379, known by its listener`, "alerts TcpadvisorEphemeralPortPressure,"} {
			if !strings.Contains(out, want) {
				t.Errorf("%+v: the text lacks %s:\n%s", style, want, out)
			}
		}
	}
}

// checkWidth fails for a line wider than width, but for fixes and links,
// which are kept whole to be copied.
func checkWidth(t *testing.T, out string, width int) {
	t.Helper()
	for line := range strings.Lines(out) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "    | ") || strings.HasPrefix(line, "  More: ") {
			continue
		}
		plain := strings.NewReplacer("\x1b[1;31m", "", "\x1b[1;33m", "", "\x1b[0m", "").Replace(line)
		if n := utf8.RuneCountInString(plain); n > width {
			t.Errorf("a line of %d columns, wider than %d:\n%s", n, width, line)
		}
	}
}

func TestHTMLEscapes(t *testing.T) {
	var b bytes.Buffer
	if err := HTML(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<title>tcpadvisor: advice</title>", "port-pressure: 10.0.0.1 -&gt; 10.0.0.5:6379", "net.ipv4.tcp_tw_reuse = 1", "&lt;script&gt;",
		`id="port-pressure-10.0.0.1-10.0.0.5-6379"`, `href="/metrics"`, `href="?refresh=30"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>TIME_WAIT") {
		t.Error("a label value reached the page unescaped")
	}
	if strings.Contains(page, "http-equiv") {
		t.Error("the page reloads itself without ?refresh")
	}
}

// TestHTMLPage checks what the daemon's flags and the query change: the
// metrics link follows --web.telemetry-path, ?refresh=N reloads the page,
// and control characters from names show as escapes.
func TestHTMLPage(t *testing.T) {
	var b bytes.Buffer
	if err := HTMLPage(&b, hostileReport(), Page{MetricsPath: "/custom/metrics", Refresh: 15}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{`href="/custom/metrics"`, `<meta http-equiv="refresh" content="15">`, `\x1b[31mredis\x1b[0m\nfake line`, `href="/docs/advice.md"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if !strings.Contains(page, "\n\tindented") {
		t.Error("a fix's tab is not kept in the page")
	}
	if strings.ContainsAny(page, "\x1b\a\r\u202e") {
		t.Errorf("a control character reached the page:\n%q", page)
	}
	for _, id := range regexp.MustCompile(`id="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		if strings.ContainsAny(id[1], " >[]") {
			t.Errorf("anchor %q holds a space or a bracket", id[1])
		}
	}
}

func TestTargetAndValue(t *testing.T) {
	for in, want := range map[string]string{
		Target(map[string]string{"source_address": "::1", "destination_address": "::1", "destination_port": "80"}): "::1 -> [::1]:80",
		Target(map[string]string{"port": "22"}):       "port 22",
		Target(nil):                                   "this host",
		Target(map[string]string{"b": "2", "a": "1"}): "a=1 b=2",
		Value(13155):                                  "13155",
		Value(0.92981):                                "0.93",
	} {
		if in != want {
			t.Errorf("got %q, want %q", in, want)
		}
	}
}

// TestWarmingUp: an empty report of an advisor that has not yet watched
// its slowest rule's window says so and until when, in text and HTML, not
// "nothing to change".
func TestWarmingUp(t *testing.T) {
	until := time.Date(2026, 11, 27, 12, 5, 0, 0, time.UTC)
	r := advisor.Report{WarmingUp: true, WarmUntil: &until}
	var b bytes.Buffer
	Text(&b, r)
	if got, want := b.String(), "tcpadvisor: no advice yet: warming up until 2026-11-27 12:05:00 UTC, when the\nadvisor will have watched as long as its slowest rule needs.\n"; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
	b.Reset()
	if err := HTML(&b, r); err != nil {
		t.Fatal(err)
	}
	if page := b.String(); !strings.Contains(page, "warming up until 2026-11-27 12:05:00 UTC") || strings.Contains(page, "nothing to change") {
		t.Errorf("page does not say it is warming up:\n%s", page)
	}
}

// TestParseRefresh: ?refresh takes whole seconds from 1 to an hour; empty
// is no reload; anything else is an error naming the value.
func TestParseRefresh(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"", 0, true}, {"1", 1, true}, {"30", 30, true}, {"3600", 3600, true},
		{"0", 0, false}, {"3601", 0, false}, {"-5", 0, false}, {"1.5", 0, false}, {"30s", 0, false}, {"x", 0, false},
	} {
		got, err := ParseRefresh(c.in)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("ParseRefresh(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("refresh=%q", c.in)) {
			t.Errorf("ParseRefresh(%q): %v, want the value named", c.in, err)
		}
	}
}
