//go:build unix && !linux

package pgtest

import (
	"fmt"
	"syscall"
	"time"
)

const goneTimeout = 30 * time.Second

// sysProcAttr runs a server binary as cred (nil: as ourselves). Without Linux's parent-death
// signal, a server outlives a parent that dies without calling Close.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}

// crash SIGKILLs the postmaster; its children exit when they see it gone.
func crash(pid int) []int {
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return nil
}

// waitGone waits until none of pids exists.
func waitGone(pids []int) error {
	deadline := time.Now().Add(goneTimeout)
	for {
		var live []int
		for _, p := range pids {
			if processAlive(p) {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: server processes %v still running after %s", live, goneTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processAlive reports whether pid exists.
func processAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// childrenOf is unknown here.
func childrenOf(int) []int { return nil }
