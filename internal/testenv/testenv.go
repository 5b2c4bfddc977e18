// Package testenv is the one envtest setup of the repository, as fluxcd/pkg/runtime/testenv
// is Flux's: every suite that needs a kube-apiserver (controllers, the sync engine, the
// HTTP API, the OAuth2 refresher, the CRD validation tests) starts it here.
//
// Start runs kube-apiserver and etcd from KUBEBUILDER_ASSETS (default <repo>/bin/k8s, where
// `make control-plane` builds them), installs config/crd/bases, creates the operator's
// namespace and applies the RBAC the operator ships (config/rbac, named and namespaced as
// config/default names them). It returns two identities:
//
//   - Config and Client: the envtest admin (system:masters), for setting tests up and for
//     assertions. Client is direct: it never reads a stale cache.
//   - ManagerConfig: the admin config impersonating the operator's ServiceAccount, which
//     holds nothing but that RBAC. Run the manager, and anything else the operator runs,
//     with it: a verb the code needs and the role lacks fails the test that exercises it,
//     as it would fail in a real cluster.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
)

// Options configure Start. The zero value is what most suites want.
type Options struct {
	// Scheme of Client; nil means client-go's kinds and this module's.
	Scheme *runtime.Scheme
	// Namespace is the operator's own namespace; empty means the one config/default
	// installs into.
	Namespace string
	// Namespaces are created besides the operator's.
	Namespaces []string
}

// Environment is a running control plane with the operator's CRDs and RBAC.
type Environment struct {
	// Config is the envtest admin's: for test setup and assertions, never for the
	// operator's own code.
	Config *rest.Config
	// Client is a direct (uncached) client on Config.
	Client client.Client
	// ManagerConfig impersonates the operator's ServiceAccount: the manager runs with it.
	ManagerConfig *rest.Config
	// Namespace is the operator's namespace; ServiceAccount the name of its
	// ServiceAccount there, bound to the shipped roles.
	Namespace      string
	ServiceAccount string
	// Root is the repository's root directory.
	Root string

	env     *envtest.Environment
	mu      sync.Mutex
	refused []string
}

// Refused lists the requests made with ManagerConfig that the API server refused with 403
// Forbidden ("VERB /path"). Some of the operator's writes fail quietly (an Event, a
// lease renewal, a write retried until the test gives up); a suite that asserts Refused
// is empty when it ends catches those too: the operator is never meant to be refused.
func (e *Environment) Refused() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.refused)
}

// recordRefusals wraps the manager's transport to note every 403.
func (e *Environment) recordRefusals(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			e.mu.Lock()
			e.refused = append(e.refused, req.Method+" "+req.URL.Path)
			e.mu.Unlock()
		}
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// Username is the Kubernetes user name ManagerConfig acts as.
func (e *Environment) Username() string {
	return serviceAccountUser(e.Namespace, e.ServiceAccount)
}

// Start starts a control plane and prepares it (see the package doc). Without a built
// control plane it fails, saying how to get one: a suite that cannot run must not pass.
func Start(opts Options) (_ *Environment, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	apiServer, etcd, err := binaries(root)
	if err != nil {
		return nil, err
	}
	scheme := opts.Scheme
	if scheme == nil {
		scheme = DefaultScheme()
	}
	deploy, err := readDefaultKustomization(root)
	if err != nil {
		return nil, err
	}
	ns := opts.Namespace
	if ns == "" {
		ns = deploy.Namespace
	}
	objs, sa, err := ShippedRBAC(root, ns)
	if err != nil {
		return nil, err
	}

	e := &Environment{Namespace: ns, ServiceAccount: sa, Root: root, env: &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}}
	e.env.ControlPlane.GetAPIServer().Path = apiServer
	e.env.ControlPlane.Etcd = &envtest.Etcd{Path: etcd}
	if e.Config, err = e.env.Start(); err != nil {
		return nil, fmt.Errorf("testenv: starting kube-apiserver and etcd: %w", err)
	}
	defer func() {
		if err != nil {
			_ = e.env.Stop()
		}
	}()
	if e.Client, err = client.New(e.Config, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range append([]string{ns}, opts.Namespaces...) {
		if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			return nil, fmt.Errorf("creating namespace %s: %w", name, err)
		}
	}
	for _, obj := range objs {
		if err := e.Client.Create(ctx, obj); err != nil {
			return nil, fmt.Errorf("applying the shipped RBAC, %T %s: %w", obj, obj.GetName(), err)
		}
	}
	e.ManagerConfig = rest.CopyConfig(e.Config)
	e.ManagerConfig.Impersonate = rest.ImpersonationConfig{
		UserName: e.Username(),
		// What the API server gives a ServiceAccount's token.
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	e.ManagerConfig.Wrap(e.recordRefusals)
	if err := e.waitForRBAC(ctx, objs); err != nil {
		return nil, err
	}
	return e, nil
}

// Stop stops the control plane.
func (e *Environment) Stop() error {
	if e == nil || e.env == nil {
		return nil
	}
	return e.env.Stop()
}

// ManagerClient is a direct client acting as the operator's ServiceAccount, for code of
// the operator that a test runs without the manager (the OAuth2 refresher).
func (e *Environment) ManagerClient() (client.Client, error) {
	return client.New(e.ManagerConfig, client.Options{Scheme: e.Client.Scheme()})
}

// DefaultScheme knows client-go's kinds and this module's.
func DefaultScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// RepoRoot is the directory holding go.mod, found upwards from the working directory
// (a test runs in its package's directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// binaries finds kube-apiserver and etcd in KUBEBUILDER_ASSETS, or in <root>/bin/k8s when
// it is unset.
func binaries(root string) (apiServer, etcd string, err error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	from := "KUBEBUILDER_ASSETS"
	if dir == "" {
		dir, from = filepath.Join(root, "bin", "k8s"), "the default bin/k8s (KUBEBUILDER_ASSETS is unset)"
	}
	apiServer, etcd = filepath.Join(dir, "kube-apiserver"), filepath.Join(dir, "etcd")
	for _, p := range []string{apiServer, etcd} {
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("testenv: no control plane: %s is missing from %s (%s). "+
				"Run `make control-plane` (it builds kube-apiserver and etcd from source into bin/k8s), "+
				"or point KUBEBUILDER_ASSETS at a folder holding both", filepath.Base(p), dir, from)
		}
	}
	return apiServer, etcd, nil
}

// waitForRBAC returns once the API server's authorizer (which learns of RBAC objects
// through informers) lets the ServiceAccount do the first verb of every rule it was
// given, so that no test depends on that lag.
func (e *Environment) waitForRBAC(ctx context.Context, objs []client.Object) error {
	type check struct {
		ns   string
		rule rbacv1.PolicyRule
	}
	var checks []check
	bound := map[string]bool{} // "Role/ns/name" or "ClusterRole//name" bound to the SA
	for _, obj := range objs {
		var ref rbacv1.RoleRef
		var subjects []rbacv1.Subject
		ns := ""
		switch b := obj.(type) {
		case *rbacv1.ClusterRoleBinding:
			ref, subjects = b.RoleRef, b.Subjects
		case *rbacv1.RoleBinding:
			ref, subjects, ns = b.RoleRef, b.Subjects, b.Namespace
		default:
			continue
		}
		for _, s := range subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Name == e.ServiceAccount && s.Namespace == e.Namespace {
				bound[ref.Kind+"/"+ns+"/"+ref.Name] = true
			}
		}
	}
	for _, obj := range objs {
		switch r := obj.(type) {
		case *rbacv1.ClusterRole:
			if bound["ClusterRole//"+r.Name] {
				for _, rule := range r.Rules {
					checks = append(checks, check{"", rule})
				}
			}
		case *rbacv1.Role:
			if bound["Role/"+r.Namespace+"/"+r.Name] {
				for _, rule := range r.Rules {
					checks = append(checks, check{r.Namespace, rule})
				}
			}
		}
	}
	if len(checks) == 0 {
		return fmt.Errorf("testenv: config/rbac binds no role to ServiceAccount %s/%s", e.Namespace, e.ServiceAccount)
	}
	for _, c := range checks {
		resource, sub, _ := strings.Cut(c.rule.Resources[0], "/")
		attrs := &authzv1.ResourceAttributes{Namespace: c.ns, Verb: c.rule.Verbs[0],
			Group: c.rule.APIGroups[0], Resource: resource, Subresource: sub}
		for {
			sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
				User: e.Username(), Groups: e.ManagerConfig.Impersonate.Groups, ResourceAttributes: attrs,
			}}
			if err := e.Client.Create(ctx, sar); err != nil {
				return fmt.Errorf("testenv: checking the shipped RBAC: %w", err)
			}
			if sar.Status.Allowed {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("testenv: %s is still not allowed %+v: %s", e.Username(), *attrs, sar.Status.Reason)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

func serviceAccountUser(ns, name string) string {
	return "system:serviceaccount:" + ns + ":" + name
}

// kustomization is the part of a kustomization.yaml this package reads.
type kustomization struct {
	Namespace  string   `json:"namespace"`
	NamePrefix string   `json:"namePrefix"`
	Resources  []string `json:"resources"`
}

func readKustomization(dir string) (kustomization, error) {
	var k kustomization
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return k, err
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		return k, fmt.Errorf("%s: %w", dir, err)
	}
	return k, nil
}

func readDefaultKustomization(root string) (kustomization, error) {
	k, err := readKustomization(filepath.Join(root, "config", "default"))
	if err == nil && k.Namespace == "" {
		err = errors.New("testenv: config/default/kustomization.yaml sets no namespace")
	}
	return k, err
}

// ShippedRBAC reads the resources of config/rbac/kustomization.yaml and names them as
// config/default does (its namePrefix), with every namespaced object, and every
// ServiceAccount subject, in namespace ns. It returns them with the name of the one
// ServiceAccount they define, the manager's.
func ShippedRBAC(root, ns string) (objs []client.Object, serviceAccount string, err error) {
	deploy, err := readDefaultKustomization(root)
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(root, "config", "rbac")
	k, err := readKustomization(dir)
	if err != nil {
		return nil, "", err
	}
	prefix := deploy.NamePrefix
	for _, res := range k.Resources {
		docs, err := readObjects(filepath.Join(dir, res))
		if err != nil {
			return nil, "", err
		}
		for _, obj := range docs {
			obj.SetName(prefix + obj.GetName())
			switch o := obj.(type) {
			case *corev1.ServiceAccount:
				if serviceAccount != "" {
					return nil, "", fmt.Errorf("testenv: config/rbac defines more than one ServiceAccount")
				}
				o.Namespace, serviceAccount = ns, o.Name
			case *rbacv1.ClusterRole:
			case *rbacv1.Role:
				o.Namespace = ns
			case *rbacv1.ClusterRoleBinding:
				o.RoleRef.Name = prefix + o.RoleRef.Name
				o.Subjects = subjects(o.Subjects, prefix, ns)
			case *rbacv1.RoleBinding:
				o.Namespace = ns
				o.RoleRef.Name = prefix + o.RoleRef.Name
				o.Subjects = subjects(o.Subjects, prefix, ns)
			default:
				return nil, "", fmt.Errorf("testenv: %s holds a %T, which ShippedRBAC does not know how to name", res, obj)
			}
			objs = append(objs, obj)
		}
	}
	if serviceAccount == "" {
		return nil, "", errors.New("testenv: config/rbac defines no ServiceAccount")
	}
	return objs, serviceAccount, nil
}

func subjects(in []rbacv1.Subject, prefix, ns string) []rbacv1.Subject {
	out := make([]rbacv1.Subject, len(in))
	for i, s := range in {
		if s.Kind == rbacv1.ServiceAccountKind {
			s.Name, s.Namespace = prefix+s.Name, ns
		}
		out[i] = s
	}
	return out
}

var decoder = serializer.NewCodecFactory(clientgoscheme.Scheme).UniversalDeserializer()

// readObjects decodes every document of a YAML file.
func readObjects(path string) ([]client.Object, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var objs []client.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		co, ok := obj.(client.Object)
		if !ok {
			return nil, fmt.Errorf("%s: %T is not an object", path, obj)
		}
		objs = append(objs, co)
	}
}

// stripComments drops comment lines, so a document of comments alone counts as empty.
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}
