package devcluster

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// Running reads the state file of the cluster in runDir (see State) and reports whether its supervisor runs.
func Running(runDir string) (State, bool) {
	var st State
	data, err := os.ReadFile(filepath.Join(runDir, stateFile))
	if err != nil || json.Unmarshal(data, &st) != nil || st.PID <= 0 {
		return st, false
	}
	return st, processAlive(st.PID)
}

// ProcessAlive reports whether process pid runs: it exists and is not a zombie.
func ProcessAlive(pid int) bool { return processAlive(pid) }

// StopKeepLogs stops every component as Stop does but keeps the run directory, with the components' logs and the
// audit log (of a failed test run, for reading).
func (c *Cluster) StopKeepLogs() { c.stop(false) }
