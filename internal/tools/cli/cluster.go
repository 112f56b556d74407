package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/promserver"
	"github.com/canaryline/canaryline/internal/tools/bundle"
)

// clusterBuild is `canaryline cluster build`: the control plane's binaries, and on request the real node's, Tekton's
// and the tools'. The parts are built one after the other, the real node right after the control plane: its
// kubelet is the same Kubernetes module built the same way, so it reuses the compiled packages and takes a minute.
// Built side by side, the parts took longer cold on 2 cores: every build is bound by the processor, and the
// kubelet then compiled Kubernetes a second time beside the control plane.
func clusterBuild(fs *flag.FlagSet, env Env) runFunc {
	realNode := fs.Bool("real-node", false, "also build a real node: kubelet, containerd, runc and CNI plugins")
	tekton := fs.Bool("tekton", false, "also build Tekton Pipelines and Triggers: controllers, webhook, resolvers, interceptors (implies --real-node)")
	tools := fs.Bool("tools", false, "also build the tools the tests and the demo on the real node build on first use: tkn and a Prometheus with Kubernetes service discovery")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) error {
		cacheDir, err := cacheDirOf(env)
		if err != nil {
			return err
		}
		parts := []func(context.Context, string, io.Writer) error{buildControlPlane}
		if *realNode || *tekton {
			parts = append(parts, buildNode)
		}
		if *tekton {
			parts = append(parts, buildTekton)
		}
		if *tools {
			parts = append(parts, buildTkn, buildPrometheus)
		}
		for _, build := range parts {
			if err := build(ctx, cacheDir, stderr); err != nil {
				return err
			}
		}
		return nil
	}
}

// buildControlPlane builds (or finds cached) the control plane's binaries and CRDs.
func buildControlPlane(ctx context.Context, cacheDir string, stderr io.Writer) error {
	bins, err := devcluster.Prepare(ctx, cacheDir, devcluster.DefaultVersions, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "canaryline: control plane binaries ready in %s\n", bins.Dir)
	return nil
}

// buildNode builds (or finds cached) the real node's binaries.
func buildNode(ctx context.Context, cacheDir string, stderr io.Writer) error {
	node, err := devcluster.EnsureNodeBinaries(ctx, cacheDir, devcluster.DefaultNodeVersions, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "canaryline: real node binaries ready in %s (CNI plugins in %s)\n", node.Dir, node.CNIDir)
	return nil
}

// buildTekton builds (or finds cached) Tekton's and Triggers' programs and images.
func buildTekton(ctx context.Context, cacheDir string, stderr io.Writer) error {
	tb, err := devcluster.EnsureTektonBinaries(ctx, cacheDir, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "canaryline: Tekton binaries ready in %s\n", tb.Dir)
	return nil
}

// clusterUp is `canaryline cluster up`: a cluster in the foreground, or in the background with --detach.
func clusterUp(fs *flag.FlagSet, env Env) runFunc {
	dir := dirFlag(fs, env)
	nodes := fs.Int("nodes", env.Nodes, "number of KWOK fake nodes, 1 to 100")
	detach := fs.Bool("detach", false, "start in the background and return once it is ready")
	realNode := fs.Bool("real-node", false, "also start a real node (needs root): kubelet, containerd, runc and CNI plugins beside the KWOK nodes")
	tekton := fs.Bool("tekton", false, "also run Tekton Pipelines and Triggers on the real node (implies --real-node)")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) error {
		*realNode = *realNode || *tekton
		if *nodes < 1 || *nodes > 100 {
			return usagef("--nodes %d: give a number from 1 to 100 (or set CANARYLINE_NODES)", *nodes)
		}
		cacheDir, abs, err := runDirOf(env, *dir)
		if err != nil {
			return err
		}
		if st, ok := devcluster.Running(abs); ok {
			fmt.Fprintf(stderr, "canaryline: a cluster already runs in %s (pid %d)\n", abs, st.PID)
			fmt.Fprintf(stdout, "export KUBECONFIG=%s\n", st.Kubeconfig)
			return nil
		}
		if *realNode {
			if err := devcluster.CheckRealNode(); err != nil {
				return usagef("cluster up --real-node (or --tekton): %v", err)
			}
		}
		if *detach {
			return upDetached(ctx, abs, *nodes, *realNode, *tekton, stdout, stderr)
		}
		return upForeground(ctx, cacheDir, abs, *nodes, *realNode, *tekton, stdout, stderr)
	}
}

// clusterDown is `canaryline cluster down`.
func clusterDown(fs *flag.FlagSet, env Env) runFunc {
	dir := dirFlag(fs, env)
	return func(ctx context.Context, _ []string, _, stderr io.Writer) error {
		_, abs, err := runDirOf(env, *dir)
		if err != nil {
			return err
		}
		return down(ctx, abs, stderr)
	}
}

// clusterStatus is `canaryline cluster status`.
func clusterStatus(fs *flag.FlagSet, env Env) runFunc {
	dir := dirFlag(fs, env)
	return func(_ context.Context, _ []string, stdout, stderr io.Writer) error {
		_, abs, err := runDirOf(env, *dir)
		if err != nil {
			return err
		}
		st, ok := devcluster.Running(abs)
		if !ok {
			return fmt.Errorf("no cluster runs in %s; start one with `canaryline cluster up --detach`", abs)
		}
		fmt.Fprintf(stderr, "canaryline: cluster running in %s (pid %d), API %s via the OpenShift shim %s\n", abs, st.PID, st.APIServerURL, st.ShimURL)
		fmt.Fprintf(stdout, "export KUBECONFIG=%s\n", st.Kubeconfig)
		return nil
	}
}

// dirFlag registers --dir, the cluster's run directory.
func dirFlag(fs *flag.FlagSet, env Env) *string {
	return fs.String("dir", env.ClusterDir, "run directory of the cluster (CANARYLINE_CLUSTER_DIR; empty: $CANARYLINE_CACHE_DIR/cluster)")
}

// cacheDirOf is CANARYLINE_CACHE_DIR, else the user cache directory's.
func cacheDirOf(env Env) (string, error) {
	if env.CacheDir != "" {
		return env.CacheDir, nil
	}
	return devcluster.DefaultCacheDir()
}

// runDirOf returns the cache directory and the absolute run directory: dir, else the cache directory's cluster.
func runDirOf(env Env, dir string) (cacheDir, abs string, err error) {
	if cacheDir, err = cacheDirOf(env); err != nil {
		return "", "", err
	}
	if dir == "" {
		dir = filepath.Join(cacheDir, "cluster")
	}
	abs, err = filepath.Abs(dir)
	return cacheDir, abs, err
}

// upForeground starts the cluster in this process and keeps it until ctx ends (Ctrl-C, SIGTERM).
func upForeground(ctx context.Context, cacheDir, dir string, nodes int, realNode, tekton bool, stdout, stderr io.Writer) error {
	c, err := devcluster.Start(ctx, devcluster.Options{CacheDir: cacheDir, RunDir: dir, Nodes: nodes, RealNode: realNode, Tekton: tekton, Log: stderr})
	if err != nil {
		return err
	}
	defer c.Stop()
	fmt.Fprintf(stdout, "export KUBECONFIG=%s\n", c.Kubeconfig)
	fmt.Fprintln(stderr, "canaryline: cluster running; Ctrl-C (or `canaryline cluster down`) stops it")
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := c.Alive(); err != nil {
				return fmt.Errorf("a component died, stopping the cluster: %w", err)
			}
		}
	}
}

// upDetached runs `canaryline cluster up` in a new session, shows its progress, and returns once the cluster is
// ready (or the child failed).
func upDetached(ctx context.Context, dir string, nodes int, realNode, tekton bool, stdout, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, "cluster.json"))
	logPath := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd := exec.Command(exe, "cluster", "up", "--dir", dir, "--nodes", strconv.Itoa(nodes), "--real-node="+strconv.FormatBool(realNode), "--tekton="+strconv.FormatBool(tekton))
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the cluster supervisor: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var off int64
	follow := func() {
		f, err := os.Open(logPath)
		if err != nil {
			return
		}
		defer f.Close()
		if _, err := f.Seek(off, io.SeekStart); err == nil {
			n, _ := io.Copy(stderr, f)
			off += n
		}
	}
	for {
		follow()
		if st, ok := devcluster.Running(dir); ok && st.PID == cmd.Process.Pid {
			fmt.Fprintf(stderr, "canaryline: cluster running in the background (pid %d, log %s); `canaryline cluster down` stops it\n", st.PID, logPath)
			fmt.Fprintf(stdout, "export KUBECONFIG=%s\n", st.Kubeconfig)
			return nil
		}
		select {
		case err := <-exited:
			follow()
			return fmt.Errorf("the cluster did not start (%v); log: %s", err, logPath)
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-exited
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// down stops the supervisor in dir with SIGTERM; it stops its components and removes dir.
func down(ctx context.Context, dir string, stderr io.Writer) error {
	st, ok := devcluster.Running(dir)
	if !ok {
		fmt.Fprintf(stderr, "canaryline: no cluster runs in %s\n", dir)
		return nil
	}
	if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop pid %d: %w", st.PID, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for devcluster.ProcessAlive(st.PID) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(st.PID, syscall.SIGKILL) // its components die with it (Pdeathsig)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Fprintf(stderr, "canaryline: cluster in %s stopped\n", dir)
	return nil
}

// buildTkn and buildPrometheus build (or find cached) tkn and the Prometheus with Kubernetes service discovery, so
// that the tests that use them do not build them within their own time limits.
func buildTkn(ctx context.Context, cacheDir string, log io.Writer) error {
	tkn, err := bundle.TknBinary(ctx, cacheDir, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "canaryline: tool ready: %s\n", tkn)
	return nil
}

func buildPrometheus(ctx context.Context, cacheDir string, log io.Writer) error {
	prom, err := promserver.KubernetesBinary(ctx, cacheDir, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "canaryline: tool ready: %s\n", prom)
	return nil
}
