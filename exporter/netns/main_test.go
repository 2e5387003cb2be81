package netns

import (
	"os"
	"runtime"
	"testing"
)

// Locked in init, the main goroutine stays on the thread-group leader: the
// tests run elsewhere and hand it work through onLeader, to check that Do
// never moves the leader into another namespace.
func init() { runtime.LockOSThread() }

// onLeader runs funcs on the thread-group leader.
var onLeader = make(chan func())

func TestMain(m *testing.M) {
	code := make(chan int)
	go func() { code <- m.Run() }()
	for {
		select {
		case f := <-onLeader:
			f()
		case c := <-code:
			os.Exit(c)
		}
	}
}

// runOnLeader runs f on the thread-group leader and waits for it.
func runOnLeader(f func()) {
	done := make(chan struct{})
	onLeader <- func() {
		defer close(done)
		f()
	}
	<-done
}
