package devcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// localProvisioner is the name StorageClass TektonStorageClass gives as its provisioner.
const localProvisioner = "canaryline.dev/local-volume"

// startProvisioner makes TektonStorageClass the default StorageClass and provisions its claims as a dynamic
// provisioner would: each Pending claim gets a PersistentVolume bound to it, a directory of the real node
// (hostPath, node affinity to the node), writable by any user as OpenShift's arbitrary UIDs need; a released
// volume is deleted with its directory. This is what lets a PipelineRun's volumeClaimTemplate bind.
func (c *Cluster) startProvisioner(ctx context.Context, kube kubernetes.Interface) error {
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: TektonStorageClass,
		Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner: localProvisioner, ReclaimPolicy: ptr(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr(storagev1.VolumeBindingImmediate)}
	if _, err := kube.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("StorageClass %s: %w", TektonStorageClass, err)
	}
	dir := filepath.Join(c.node.dir, "volumes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f := informers.NewSharedInformerFactory(kube, 0)
	runCtx, cancel := context.WithCancel(context.Background())
	c.tekton.stops = append(c.tekton.stops, func() { cancel(); f.Shutdown() })
	claims := f.Core().V1().PersistentVolumeClaims().Informer()
	volumes := f.Core().V1().PersistentVolumes().Informer()
	provision := func(obj any) {
		if pvc, ok := obj.(*corev1.PersistentVolumeClaim); ok {
			c.provision(runCtx, kube, dir, pvc)
		}
	}
	release := func(obj any) {
		if pv, ok := obj.(*corev1.PersistentVolume); ok && pv.Status.Phase == corev1.VolumeReleased &&
			pv.Annotations["pv.kubernetes.io/provisioned-by"] == localProvisioner {
			_ = kube.CoreV1().PersistentVolumes().Delete(runCtx, pv.Name, metav1.DeleteOptions{})
			if pv.Spec.HostPath != nil && filepath.Dir(pv.Spec.HostPath.Path) == dir {
				_ = os.RemoveAll(pv.Spec.HostPath.Path)
			}
		}
	}
	if _, err := claims.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: provision,
		UpdateFunc: func(_, o any) { provision(o) }}); err != nil {
		return err
	}
	if _, err := volumes.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: release,
		UpdateFunc: func(_, o any) { release(o) }}); err != nil {
		return err
	}
	f.Start(runCtx.Done())
	return nil
}

// provision makes the volume of a Pending claim of TektonStorageClass (once: the volume is named by its UID).
func (c *Cluster) provision(ctx context.Context, kube kubernetes.Interface, dir string, pvc *corev1.PersistentVolumeClaim) {
	if pvc.Status.Phase != corev1.ClaimPending || pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil ||
		deref(pvc.Spec.StorageClassName) != TektonStorageClass {
		return
	}
	name := "pvc-" + string(pvc.UID)
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(path, 0o777); err != nil {
		fmt.Fprintf(c.log, "devcluster: provision %s/%s: %v\n", pvc.Namespace, pvc.Name, err)
		return
	}
	_ = os.Chmod(path, 0o777) // the step's user is not known: OpenShift gives each namespace its own UIDs
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": localProvisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              TektonStorageClass,
			VolumeMode:                    pvc.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: pvc.Namespace,
				Name: pvc.Name, UID: pvc.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path,
				Type: ptr(corev1.HostPathDirectory)}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: RealNodeLabel, Operator: corev1.NodeSelectorOpIn,
					Values: []string{"true"}}}}}}},
		},
	}
	if _, err := kube.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		fmt.Fprintf(c.log, "devcluster: provision %s/%s: %v\n", pvc.Namespace, pvc.Name, err)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
