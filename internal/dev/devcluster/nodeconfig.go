package devcluster

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// writeConfigs writes containerd's, the CNI's and kubelet's configuration, kubelet's kubeconfig with the node's
// identity, and the supervisor's configuration, whose path it returns.
func (n *RealNode) writeConfigs(p *pki) (string, error) {
	d := n.dir
	for _, sub := range []string{"logs", "cni/net.d", "cni/ipam", "certs.d", "host/run", "host/var-lib", "host/var-log"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return "", err
		}
	}
	files := map[string]string{
		"containerd.toml":              n.containerdConfig(),
		"cni/net.d/10-bridge.conflist": cniConfig(filepath.Join(d, "cni", "ipam")),
		"kubelet.yaml":                 n.kubeletConfig(p.CACert),
	}
	cert, key, err := p.signClient("node-"+RealNodeName, "system:node:"+RealNodeName, "system:nodes")
	if err != nil {
		return "", err
	}
	kc, err := kubeconfigFor("https://127.0.0.1:6443", p.CAData, cert, key)
	if err != nil {
		return "", err
	}
	files["kubelet.kubeconfig"] = kc
	// The node's registry is plain HTTP at the node's address; OpenShift's internal registry is pulled from it.
	reg := net.JoinHostPort(nodeIP.String(), strconv.Itoa(NodeRegistryPort))
	for _, host := range []string{reg, OpenShiftRegistry} {
		files["certs.d/"+host+"/hosts.toml"] = fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n",
			"http://"+reg, "http://"+reg)
	}
	for name, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(d, name)), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o600); err != nil {
			return "", err
		}
	}
	var cgroups []string
	for _, cg := range n.rec.Cgroups {
		cgroups = append(cgroups, filepath.Join(cg, "node"))
	}
	cfg := nodeInitConfig{Cgroups: cgroups,
		// The host paths kubelet and containerd hard-code (device plugins under /var/lib/kubelet, /var/log/containers,
		// the shims' sockets under /run/containerd) are the node's own directories in its mount namespace.
		Mounts: []bindMount{{filepath.Join(d, "host/run"), "/run"}, {filepath.Join(d, "host/var-lib"), "/var/lib"},
			{filepath.Join(d, "host/var-log"), "/var/log"}},
		Programs: []nodeProgram{
			{Name: "containerd", Path: n.bins.Path("containerd"), Args: []string{"--config", filepath.Join(d, "containerd.toml")},
				Log: filepath.Join(d, "logs", "containerd.log"), WaitFor: n.socket},
			{Name: "kubelet", Path: n.bins.Path("kubelet"), Args: []string{"--config=" + filepath.Join(d, "kubelet.yaml"),
				"--kubeconfig=" + filepath.Join(d, "kubelet.kubeconfig"), "--hostname-override=" + RealNodeName,
				"--node-ip=" + nodeIP.String(), "--node-labels=" + RealNodeLabel + "=true", "--v=1"},
				Log: filepath.Join(d, "logs", "kubelet.log")},
		}}
	data, _ := json.MarshalIndent(cfg, "", "  ")
	path := filepath.Join(d, "nodeinit.json")
	return path, os.WriteFile(path, data, 0o600)
}

func (n *RealNode) containerdConfig() string {
	d := n.dir
	return fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %q
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = %q

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%q]
    conf_dir = %q
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %q
        Root = %q
        SystemdCgroup = false
`, filepath.Join(d, "containerd", "root"), filepath.Join(d, "containerd", "state"), n.socket, n.socket+".ttrpc",
		PauseImage, filepath.Join(d, "certs.d"), n.bins.CNIDir, filepath.Join(d, "cni", "net.d"), n.bins.Path("runc"),
		filepath.Join(d, "runc"))
}

// cniConfig is the pods' network: a bridge in the node's namespace, addresses from podSubnet, and routes to the
// Services and the node only. There is no default route: a pod that dials anything else gets "network is
// unreachable" at once.
func cniConfig(ipamDir string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "canaryline",
  "plugins": [{
    "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "dataDir": %q,
      "ranges": [[{"subnet": %q, "gateway": %q}]],
      "routes": [{"dst": %q}, {"dst": %q}]}
  }]
}
`, ipamDir, podSubnet, podGateway, serviceNet.String(), nodeNet.String())
}

func (n *RealNode) kubeletConfig(caFile string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: %q
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
imageServiceEndpoint: unix://%s
resolvConf: ""
clusterDomain: cluster.local
clusterDNS: [%s]
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 24h
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
podLogsDir: %q
registerWithTaints:
- {key: %s, value: "true", effect: NoSchedule}
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
runtimeRequestTimeout: 2m
`, nodeIP, caFile, n.cgroupRoot(), n.socket, n.socket, nodeIP, filepath.Join(n.dir, "pod-logs"), RealNodeLabel)
}

func kubeconfigFor(server string, ca []byte, cert, key string) (string, error) {
	c, err := os.ReadFile(cert)
	if err != nil {
		return "", err
	}
	k, err := os.ReadFile(key)
	if err != nil {
		return "", err
	}
	enc := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: %s, certificate-authority-data: %s}
users:
- name: u
  user: {client-certificate-data: %s, client-key-data: %s}
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
`, server, enc(ca), enc(c), enc(k)), nil
}

// startInNode starts the node's supervisor: this binary again (MaybeNodeInit), in the node's network namespace and
// a mount namespace of its own, with SIGKILL when this process dies.
func (c *Cluster) startInNode(n *RealNode, cfgPath string) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), nodeInitEnv+"="+cfgPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // Go makes / private in it
	return startProcessWith("nodeinit", cmd, n.ns.path, filepath.Join(n.dir, "logs"), filepath.Join(c.RunDir, "pids"))
}
