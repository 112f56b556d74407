package devcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// process is one control-plane component started by this package.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// spawner starts children from one OS thread that never exits. Pdeathsig is delivered when the thread that forked
// a child dies, so the thread is pinned: when this process dies for any reason, even SIGKILL or a test timeout,
// the kernel kills every component it started. Nothing is left behind.
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	ns   string // a network namespace to start cmd in ("": the process's own)
	resp chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for r := range s.reqs {
			r.resp <- startIn(r.cmd, r.ns)
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd, ns string) error {
	resp := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, ns: ns, resp: resp}
	return <-resp
}

// startIn starts cmd in network namespace ns: a forked child has the namespaces of the thread that forked it, so
// the spawner's thread enters ns for the fork and goes back after it.
func startIn(cmd *exec.Cmd, ns string) error {
	if ns == "" {
		return cmd.Start()
	}
	self, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(self)
	target, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter %s: %w", ns, err)
	}
	err = cmd.Start()
	if berr := unix.Setns(self, unix.CLONE_NEWNET); berr != nil {
		panic(fmt.Sprintf("devcluster: the spawner thread cannot return to its network namespace: %v", berr))
	}
	return err
}

var theSpawner = newSpawner()

// startProcess starts bin with args, logging to logDir/name.log and recording its pid in pidDir/name.pid.
func startProcess(name, bin string, args []string, logDir, pidDir string) (*process, error) {
	return startProcessWith(name, exec.Command(bin, args...), "", logDir, pidDir)
}

// startProcessWith is startProcess for a prepared command (its environment, its namespaces), started in network
// namespace ns when not empty.
func startProcessWith(name string, cmd *exec.Cmd, ns, logDir, pidDir string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid, cmd.SysProcAttr.Pdeathsig = true, syscall.SIGKILL
	if err := theSpawner.start(cmd, ns); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	_ = os.WriteFile(filepath.Join(pidDir, name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// killStale kills processes recorded in pidDir by an earlier run whose supervisor died without cleaning up
// (possible only if the run directory is reused), checking that the pid still runs the recorded binary.
func killStale(pidDir string) {
	entries, err := os.ReadDir(pidDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(pidDir, e.Name()))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(data))
		if err != nil || pid <= 1 {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err == nil && filepath.Base(exe) == trimExt(e.Name()) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = os.Remove(filepath.Join(pidDir, e.Name()))
	}
}

func trimExt(name string) string { return name[:len(name)-len(filepath.Ext(name))] }

// waitFor polls cond until it is true, ctx ends, or p (when not nil) exits.
func waitFor(ctx context.Context, what string, timeout time.Duration, p *process, cond func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if cond(ctx) {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s: %s exited (%v); see %s", what, p.name, p.err, p.log)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				where := ""
				if p != nil {
					where = "; see " + p.log
				}
				return fmt.Errorf("%s: not ready after %s%s", what, timeout, where)
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
