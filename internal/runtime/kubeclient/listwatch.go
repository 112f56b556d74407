package kubeclient

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// ListWatchByName is the ListWatch of the one object called name, made of a typed client's List and Watch, for
// watchtools.UntilWithSync: a list, then a watch from the list's resourceVersion, listed again whenever the watch
// ends. With consistent, each list is a consistent read (from etcd, not the API server's cache), so that it sees
// the caller's own last write.
func ListWatchByName[L runtime.Object](name string, consistent bool,
	list func(context.Context, metav1.ListOptions) (L, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) *cache.ListWatch {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			if consistent {
				o.ResourceVersion, o.ResourceVersionMatch = "", ""
			}
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return watchFn(ctx, o)
		},
	}
}
