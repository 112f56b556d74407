package devcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// nodeInitEnv names, in the environment of a re-executed binary, the configuration of the real node's
// supervisor: MaybeNodeInit then runs it instead of the program.
const nodeInitEnv = "CANARYLINE_NODEINIT"

// nodeInitConfig is what the node's supervisor does, inside the node's network namespace and a mount namespace of
// its own: join the node's cgroups, bind the node's directories over the host paths that containerd and kubelet
// hard-code, then run the programs in order and supervise them.
type nodeInitConfig struct {
	Cgroups  []string      `json:"cgroups"`
	Mounts   []bindMount   `json:"mounts"`
	Programs []nodeProgram `json:"programs"`
}

type bindMount struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

type nodeProgram struct {
	Name string   `json:"name"`
	Path string   `json:"path"`
	Args []string `json:"args"`
	Log  string   `json:"log"`
	// WaitFor is a file (a socket) that exists once the program is ready for the next one.
	WaitFor string `json:"waitFor,omitempty"`
}

// MaybeNodeInit runs the real node's supervisor and exits when this process was started as one; otherwise it
// returns at once. Programs that start real nodes (the canaryline command, test binaries through
// devclustertest.RunTests) call it first: the node's supervisor is the same binary, started again.
func MaybeNodeInit() {
	path := os.Getenv(nodeInitEnv)
	if path == "" {
		return
	}
	if err := nodeInit(path); err != nil {
		fmt.Fprintf(os.Stderr, "nodeinit: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func nodeInit(path string) error {
	runtime.LockOSThread() // children get SIGKILL when the thread that started them ends: it is this one, for good
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg nodeInitConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	for _, cg := range cfg.Cgroups {
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", cg, err)
		}
	}
	for _, m := range cfg.Mounts {
		if err := os.MkdirAll(m.Source, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.Source, m.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", m.Source, m.Target, err)
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	exited := make(chan string, len(cfg.Programs))
	var running []*program
	defer func() { stopAll(running) }()
	for _, p := range cfg.Programs {
		r, err := startProgram(p, exited)
		if err != nil {
			return err
		}
		running = append(running, r)
		if err := waitForFile(p.WaitFor, exited, 60*time.Second); err != nil {
			return fmt.Errorf("%s: %w (see %s)", p.Name, err, p.Log)
		}
	}
	select {
	case <-sigs:
		return nil
	case name := <-exited:
		return fmt.Errorf("%s exited", name)
	}
}

// program is a started program; done is closed when it has exited.
type program struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProgram(p nodeProgram, exited chan<- string) (*program, error) {
	lf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", p.Name, err)
	}
	r := &program{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(r.done)
		exited <- p.Name
	}()
	return r, nil
}

func waitForFile(path string, exited <-chan string, timeout time.Duration) error {
	if path == "" {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case name := <-exited:
			return fmt.Errorf("%s exited before %s appeared", name, path)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New(path + " did not appear")
		}
	}
}

// stopAll asks the programs to stop, the last started first, and kills what is left after a grace period.
func stopAll(running []*program) {
	for i := len(running) - 1; i >= 0; i-- {
		_ = running[i].cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, r := range running {
		select {
		case <-r.done:
		case <-time.After(time.Until(deadline)):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	}
}
