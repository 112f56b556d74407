package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuUse is CPU time spent, split by who spent it.
type cpuUse struct {
	Steps        time.Duration // the step processes (children of this process that ended)
	ControlPlane time.Duration // etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK
	Harness      time.Duration // this process: the OpenShift API shim, the build simulator, the runner
}

func (u cpuUse) Total() time.Duration { return u.Steps + u.ControlPlane + u.Harness }

func (u cpuUse) sub(v cpuUse) cpuUse {
	return cpuUse{Steps: u.Steps - v.Steps, ControlPlane: u.ControlPlane - v.ControlPlane, Harness: u.Harness - v.Harness}
}

func (u cpuUse) String() string {
	return fmt.Sprintf("%.2f CPU-s: steps %.2f, control plane %.2f (etcd, kube-apiserver, controllers, KWOK), shim and build simulator %.2f",
		u.Total().Seconds(), u.Steps.Seconds(), u.ControlPlane.Seconds(), u.Harness.Seconds())
}

// cpuNow reads the CPU time used so far.
func cpuNow() cpuUse {
	var u cpuUse
	var self, children syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) == nil {
		u.Harness = tv(self.Utime) + tv(self.Stime)
	}
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children) == nil {
		u.Steps = tv(children.Utime) + tv(children.Stime)
	}
	u.ControlPlane = controlPlaneCPU()
	return u
}

func tv(t syscall.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}

// controlPlaneCPU sums the CPU time of this process's running children: the control plane's processes (the
// step processes are reaped, and counted by RUSAGE_CHILDREN).
func controlPlaneCPU() time.Duration {
	const ticks = 100 // USER_HZ on Linux
	me := strconv.Itoa(os.Getpid())
	var total time.Duration
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15)
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 13 || fields[1] != me {
			continue
		}
		ut, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		total += time.Duration(ut+st) * time.Second / ticks
	}
	return total
}
