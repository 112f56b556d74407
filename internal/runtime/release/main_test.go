package release

import (
	"os"
	"testing"
)

// TestMain turns client-go's WatchList off for the tests: the waits build their ListWatch from the typed clients,
// so the reflector cannot tell that the fake clientset sends no bookmark, and would wait for one. The API server
// the steps talk to supports WatchList; the fakes serve a list and a watch.
func TestMain(m *testing.M) {
	if err := os.Setenv("KUBE_FEATURE_WatchListClient", "false"); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
