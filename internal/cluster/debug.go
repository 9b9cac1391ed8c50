package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"dgpu-release/debug"
	"dgpu-release/internal/release"
)

// FieldManager names this tool in server-side apply.
const FieldManager = "dgpu-release"

var debugKinds = map[string]schema.GroupVersionResource{
	"Namespace":      {Version: "v1", Resource: "namespaces"},
	"ServiceAccount": {Version: "v1", Resource: "serviceaccounts"},
	"RoleBinding":    {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	"Pod":            {Version: "v1", Resource: "pods"},
}

// Debug deploys the debug workload of debug/manifests on the cluster.
type Debug struct {
	C         *Client
	Namespace string // default intel-dgpu-debug
}

// Objects renders the manifests of a spec.
func Objects(s debug.Spec) ([]*unstructured.Unstructured, error) {
	y, err := debug.Render(s)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(y), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("debug manifests: %w", err)
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

func (d *Debug) spec(in release.DebugSpec) debug.Spec {
	return debug.Spec{WorkflowID: in.WorkflowID, Step: string(in.Step), Kernel: in.Kernel, Image: in.Image, NodeName: in.Node, Namespace: d.Namespace}
}

// Deploy applies the manifests (server-side apply, so a retry changes nothing).
func (d *Debug) Deploy(ctx context.Context, in release.DebugSpec) (release.DebugWorkload, error) {
	s := d.spec(in)
	objs, err := Objects(s)
	if err != nil {
		return release.DebugWorkload{}, err
	}
	force := true
	for _, o := range objs {
		gvr, ok := debugKinds[o.GetKind()]
		if !ok {
			return release.DebugWorkload{}, fmt.Errorf("debug manifests: unexpected kind %s", o.GetKind())
		}
		data, err := json.Marshal(o.Object)
		if err != nil {
			return release.DebugWorkload{}, err
		}
		var ri interface {
			Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*unstructured.Unstructured, error)
		}
		if o.GetNamespace() == "" {
			ri = d.C.Dynamic.Resource(gvr)
		} else {
			ri = d.C.Dynamic.Resource(gvr).Namespace(o.GetNamespace())
		}
		if _, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: &force}); err != nil {
			return release.DebugWorkload{}, fmt.Errorf("apply %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	ns := s.Namespace
	if ns == "" {
		ns = debug.DefaultNamespace
	}
	return release.DebugWorkload{Name: debug.PodName(in.WorkflowID), Attach: debug.AttachCommand(s), Manifest: "pod/" + debug.PodName(in.WorkflowID) + " in " + ns}, nil
}

// Remove deletes the debug pod; the namespace and its service account stay for the next one.
func (d *Debug) Remove(ctx context.Context, name string) error {
	ns := d.Namespace
	if ns == "" {
		ns = debug.DefaultNamespace
	}
	err := d.C.Kube.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
