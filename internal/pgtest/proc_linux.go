package pgtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// goneTimeout bounds the wait for a killed or stopped server's processes to disappear.
const goneTimeout = 30 * time.Second

// sysProcAttr runs a server binary as cred (nil: as ourselves), SIGKILLed when its parent dies,
// even by SIGKILL; the postmaster's children then exit on their own when they see it gone. The
// kernel sends the parent-death signal when the OS thread that started the child exits; Go keeps
// its threads for the process's lifetime unless a goroutine ends while locked to one, so New
// must not be called from a goroutine that locks its thread and then returns.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	// Go sets the parent-death signal after switching credentials, which would clear it otherwise.
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}

// crash SIGKILLs the postmaster pid and every child it has. The postmaster is stopped first so
// that it forks no child after the list is taken. It returns the children killed.
func crash(pid int) []int {
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if st := procState(pid); st == "T" || st == "" || st == "Z" {
			break
		}
	}
	kids := childrenOf(pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for _, k := range kids {
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
	return kids
}

// waitGone waits until none of pids is a live (non-zombie) process: zombies left to an init that
// does not reap them do not count. Stragglers are SIGKILLed at the deadline.
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
			for _, p := range live {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			return fmt.Errorf("pgtest: server processes %v still running after %s; killed", live, goneTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// childrenOf lists the live children of pid, from /proc.
func childrenOf(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, p := range stats {
		f := statFields(p)
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil && pp == pid {
			k, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			kids = append(kids, k)
		}
	}
	return kids
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	st := procState(pid)
	return st != "" && st != "Z" && st != "X"
}

// procState is the state letter of pid ("" when there is no such process).
func procState(pid int) string {
	f := statFields("/proc/" + strconv.Itoa(pid) + "/stat")
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// statFields are the fields of a /proc/<pid>/stat after "pid (comm)": state, ppid, pgrp, ...
func statFields(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil // exited meanwhile
	}
	// comm may hold spaces and parentheses; it ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	var f []string
	for _, x := range bytes.Fields(b[i+1:]) {
		f = append(f, string(x))
	}
	return f
}
