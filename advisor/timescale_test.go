package advisor

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestEvidenceHonoursTimeScale: with the rules' windows scaled by 0.1
// (rate(x[5m]) reads 30 s), the evidence reads the same scaled window as
// the rule whose summary it stands beside, and the two agree. The counter
// is flat for five minutes and then rises by 10/s: an unscaled 5m window
// would show a fraction of that.
func TestEvidenceHonoursTimeScale(t *testing.T) {
	overflows := 0.0
	series := func() string {
		return hostSysctls + twReuse("2") + fmt.Sprintf("tcpadvisor_tcpext_listen_overflows_total %g\n", overflows)
	}
	f := newFixture(t, 0.1, series())
	f.run(t, 5*time.Minute)
	for range 90 {
		overflows += 10
		f.exp.set(series())
		f.cycle(t)
	}
	r := f.report()
	if len(r.Advice) != 1 || r.Advice[0].ID != AcceptQueueOverflow {
		t.Fatalf("advice %+v, want accept-queue-overflow", r.Advice)
	}
	adv := r.Advice[0]
	m := regexp.MustCompile(`overflow, ([0-9.]+) connections/s`).FindStringSubmatch(adv.Summary)
	if m == nil {
		t.Fatalf("summary %q has no rate", adv.Summary)
	}
	summary, _ := strconv.ParseFloat(m[1], 64)
	var evidence *Evidence
	for i, e := range adv.Evidence {
		if e.Name == "accept-queue overflows per second" {
			evidence = &adv.Evidence[i]
		}
	}
	if evidence == nil {
		t.Fatalf("no overflow rate in the evidence %+v", adv.Evidence)
	}
	if math.Abs(evidence.Value-summary) > 0.05*summary || math.Abs(summary-10) > 0.5 {
		t.Errorf("evidence %v/s (%s), summary %v/s: want both 10/s", evidence.Value, evidence.Query, summary)
	}
	if want := "[30s]"; !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(evidence.Query) {
		t.Errorf("evidence query %s, want the scaled window %s", evidence.Query, want)
	}
}
