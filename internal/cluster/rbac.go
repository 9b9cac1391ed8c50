package cluster

import (
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Rule is one permission the adapters need: written here, next to the code that uses it,
// and rendered into the worker's RBAC. A test runs the adapters as a service account
// bound to exactly these rules, so a verb used and not granted fails it.
type Rule struct {
	Group     string
	Resources []string
	Verbs     []string
	// Scope says where: "cluster", "work" (the build and test namespace) or "debug".
	Scope string
	Why   string
}

// Rules are the adapters' permissions.
var Rules = []Rule{
	{Group: "", Resources: []string{"nodes"}, Verbs: []string{"get", "list"}, Scope: "cluster", Why: "GPU node kernels; the canary node KMM labels ready"},
	{Group: "config.openshift.io", Resources: []string{"clusterversions"}, Verbs: []string{"get"}, Scope: "cluster", Why: "the cluster's OpenShift version and payload"},
	{Group: "", Resources: []string{"namespaces"}, Verbs: []string{"get", "create", "patch"}, Scope: "cluster", Why: "the debug namespace, applied server-side"},
	{Group: "rbac.authorization.k8s.io", Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, Scope: "cluster", Why: "bind the debug service account to the privileged SCC role"},
	{Group: "build.openshift.io", Resources: []string{"builds"}, Verbs: []string{"create", "get", "list", "watch"}, Scope: "work", Why: "run and watch the OpenShift Build"},
	{Group: "build.openshift.io", Resources: []string{"builds/log"}, Verbs: []string{"get"}, Scope: "work", Why: "the log tail of a failed build"},
	{Group: "kmm.sigs.x-k8s.io", Resources: []string{"modules"}, Verbs: []string{"create", "get", "delete"}, Scope: "work", Why: "the GPU test's Module"},
	{Group: "batch", Resources: []string{"jobs"}, Verbs: []string{"create", "get", "delete"}, Scope: "work", Why: "the GPU test Job"},
	{Group: "", Resources: []string{"pods"}, Verbs: []string{"list", "deletecollection"}, Scope: "work", Why: "the test Job's pods: logs and clean-up"},
	{Group: "", Resources: []string{"pods/log"}, Verbs: []string{"get"}, Scope: "work", Why: "the test tools' output"},
	{Group: "", Resources: []string{"serviceaccounts"}, Verbs: []string{"get", "create", "patch"}, Scope: "debug", Why: "the debug service account, applied server-side"},
	{Group: "rbac.authorization.k8s.io", Resources: []string{"rolebindings"}, Verbs: []string{"get", "create", "patch"}, Scope: "debug", Why: "its binding to the privileged SCC"},
	{Group: "", Resources: []string{"pods"}, Verbs: []string{"get", "create", "patch", "delete"}, Scope: "debug", Why: "the debug pod"},
}

// RBAC renders the rules as a ClusterRole and two Roles bound to a service account.
func RBAC(saNamespace, saName, workNamespace, debugNamespace string) []*unstructured.Unstructured {
	rules := map[string][]any{}
	for _, r := range Rules {
		res := make([]any, len(r.Resources))
		for i, x := range r.Resources {
			res[i] = x
		}
		verbs := append([]string(nil), r.Verbs...)
		sort.Strings(verbs)
		vs := make([]any, len(verbs))
		for i, v := range verbs {
			vs[i] = v
		}
		rules[r.Scope] = append(rules[r.Scope], map[string]any{"apiGroups": []any{r.Group}, "resources": res, "verbs": vs})
	}
	name := "dgpu-release-worker"
	subject := []any{map[string]any{"kind": "ServiceAccount", "name": saName, "namespace": saNamespace}}
	obj := func(kind, ns string, body map[string]any) *unstructured.Unstructured {
		md := map[string]any{"name": name, "labels": map[string]any{"app.kubernetes.io/part-of": "dgpu-release"}}
		if ns != "" {
			md["namespace"] = ns
		}
		o := map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": md}
		for k, v := range body {
			o[k] = v
		}
		return &unstructured.Unstructured{Object: o}
	}
	out := []*unstructured.Unstructured{
		obj("ClusterRole", "", map[string]any{"rules": rules["cluster"]}),
		obj("ClusterRoleBinding", "", map[string]any{"roleRef": map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}, "subjects": subject}),
	}
	for _, ns := range []struct{ ns, scope string }{{workNamespace, "work"}, {debugNamespace, "debug"}} {
		out = append(out,
			obj("Role", ns.ns, map[string]any{"rules": rules[ns.scope]}),
			obj("RoleBinding", ns.ns, map[string]any{"roleRef": map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}, "subjects": subject}))
	}
	return out
}
