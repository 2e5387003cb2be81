package advisor

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tcpadvisor/tcpadvisor/advisor/engine"
)

// TestAdviceMetrics: one series per current advice, firing and pending,
// with the agreed label set; absent target labels are "".
func TestAdviceMetrics(t *testing.T) {
	f := newFixture(t, 1, hostSysctls+twReuse("2")+redisFlow)
	f.alerts = []engine.Alert{
		alert("TcpadvisorConnectionPerRequest", "pool", "warning", "firing", redis),
		alert("TcpadvisorCloseWaitLeak", "close-wait-leak", "warning", "pending", map[string]string{"port": "8080", "netns": "a"}),
		alert("TcpadvisorTcpTwRecycleSet", "tw-recycle-set", "warning", "firing", nil),
	}
	want := `# HELP tcpadvisor_advice_active 1 for each advice the daemon gives now (state firing or pending), by advice ID, the alert that raised it, its severity, and where: netns, source_address, destination_address and destination_port, or port ("" where the advice has none).
# TYPE tcpadvisor_advice_active gauge
tcpadvisor_advice_active{advice="close-wait-leak",alertname="TcpadvisorCloseWaitLeak",destination_address="",destination_port="",netns="a",port="8080",severity="warning",source_address="",state="pending"} 1
tcpadvisor_advice_active{advice="pool",alertname="TcpadvisorConnectionPerRequest",destination_address="10.0.0.5",destination_port="6379",netns="",port="",severity="warning",source_address="10.0.0.1",state="firing"} 1
tcpadvisor_advice_active{advice="tw-recycle-set",alertname="TcpadvisorTcpTwRecycleSet",destination_address="",destination_port="",netns="",port="",severity="warning",source_address="",state="firing"} 1
`
	if err := testutil.CollectAndCompare(NewCollector(New(f, nil)), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	f.alerts = []engine.Alert{}
	if n := testutil.CollectAndCount(NewCollector(New(f, nil))); n != 0 {
		t.Errorf("%d series without advice, want 0", n)
	}
}
