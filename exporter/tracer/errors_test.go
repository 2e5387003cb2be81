package tracer

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// TestLoadErrorReasons: each way a load fails gets its reason, and a
// message of one line.
func TestLoadErrorReasons(t *testing.T) {
	verifier := &ebpf.VerifierError{Cause: unix.EACCES, Log: []string{
		"0: R1=ctx() R10=fp0", "; int BPF_PROG(...)", "R2 invalid mem access 'scalar'", "processed 12 insns (limit 1000000)"}}
	tests := []struct {
		name       string
		err        error
		reason     Reason
		wantInText []string
	}{
		{"no CAP_BPF", fmt.Errorf("map create: %w", unix.EPERM), ReasonNoPrivileges, nil},
		{"verifier", fmt.Errorf("load program: %w", verifier), ReasonVerifierRejected,
			[]string{"invalid mem access", "the verifier's first line: 0: R1=ctx() R10=fp0"}},
		{"no tp_btf", fmt.Errorf("load program: %w", ebpf.ErrNotSupported), ReasonKernelTooOld, nil},
		{"no tracepoint", fmt.Errorf("attach: %w", os.ErrNotExist), ReasonKernelTooOld, nil},
		{"other", errors.New("something else\nover two lines"), ReasonLoadFailed, []string{"something else over two lines"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reasonOf(tt.err); got != tt.reason {
				t.Errorf("reason %q, want %q", got, tt.reason)
			}
			msg := oneLine(tt.err).Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("message of more than one line: %q", msg)
			}
			for _, want := range tt.wantInText {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
		})
	}
}
