package step

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NamespaceGetter reads a namespace (kubeclient's CoreV1().Namespaces()).
type NamespaceGetter interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Namespace, error)
}

// NamespaceProblem looks at the error of a step's first read in namespace ns (what names the object read, such as
// "get deployments") and returns bad input naming NAMESPACE when the namespace is the problem: the read was
// forbidden (the namespace does not exist, or the step's ServiceAccount has no Role there: RBAC does not tell which),
// or the object was not found because the namespace itself does not exist. It returns nil otherwise, and the
// caller reports the error as its own.
func NamespaceProblem(ctx context.Context, err error, ns, what string, nss NamespaceGetter) error {
	fix := fmt.Sprintf("set NAMESPACE to the application's namespace (empty is the PipelineRun's own), and install canaryline there "+
		"(oc apply -k . -n NAMESPACE) so that the step's ServiceAccount is bound to its Role; namespace now: %q", ns)
	switch {
	case apierrors.IsForbidden(err):
		return &InvalidError{Param: "NAMESPACE", Fix: fix,
			Msg: fmt.Sprintf("the step may not %s in namespace %s: it does not exist, or the step's ServiceAccount has no Role there (%s)", what, ns, reasonOf(err))}
	case apierrors.IsNotFound(err) && nss != nil:
		if _, nerr := nss.Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(nerr) {
			return &InvalidError{Param: "NAMESPACE", Fix: fix, Msg: fmt.Sprintf("namespace %s does not exist", ns)}
		}
	}
	return nil
}

func reasonOf(err error) string {
	if s, ok := err.(apierrors.APIStatus); ok && s.Status().Message != "" {
		return s.Status().Message
	}
	return err.Error()
}
