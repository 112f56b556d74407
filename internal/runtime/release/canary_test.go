package release

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"
)

// A router object may serve several applications: each release marks it with its application's own keys, which
// the API accepts.
func TestRouterAnnotationsArePerApplication(t *testing.T) {
	t.Parallel()
	st := &State{ID: "r-7", App: "shop", Image: "registry.example.com/shop@sha256:77", Weight: 20}
	want := map[string]string{"shop.canaryline.dev/release": "r-7", "shop.canaryline.dev/image": st.Image, "shop.canaryline.dev/weight": "20"}
	if diff := cmp.Diff(want, routerAnnotations("shop", st)); diff != "" {
		t.Errorf("routerAnnotations (-want +got):\n%s", diff)
	}
	for k := range routerAnnotations("cart", st) {
		if _, ok := want[k]; ok {
			t.Errorf("cart's release uses shop's key %s", k)
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			t.Errorf("key %s: %v", k, errs)
		}
	}
}
