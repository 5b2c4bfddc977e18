package testenv

import (
	"context"
	"fmt"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Caller creates the ServiceAccount namespace/name of an HTTP API caller, grants it rules
// in each namespace of grants ("" for cluster-wide), waits until the API server's
// authorizer knows every grant (it learns of RBAC objects through informers) and returns
// a token for it from the TokenRequest API, as a real client would hold.
func (e *Environment) Caller(ctx context.Context, namespace, name string, grants map[string][]rbacv1.PolicyRule) (string, error) {
	k8s := e.Client
	if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}); err != nil {
		return "", err
	}
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}}
	role := "caller-" + namespace + "-" + name
	for ns, rules := range grants {
		var objs []client.Object
		if ns == "" {
			objs = []client.Object{
				&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role}, Rules: rules},
				&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role}, Subjects: subjects,
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}},
			}
		} else {
			objs = []client.Object{
				&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role}, Rules: rules},
				&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role}, Subjects: subjects,
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role}},
			}
		}
		for _, o := range objs {
			if err := k8s.Create(ctx, o); err != nil {
				return "", err
			}
		}
	}
	user := serviceAccountUser(namespace, name)
	for ns, rules := range grants {
		for _, r := range rules {
			attrs := &authzv1.ResourceAttributes{Namespace: ns, Verb: r.Verbs[0], Group: r.APIGroups[0], Resource: r.Resources[0]}
			if res, sub, ok := strings.Cut(r.Resources[0], "/"); ok {
				attrs.Resource, attrs.Subresource = res, sub
			}
			err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: attrs}}
				if err := k8s.Create(ctx, sar); err != nil {
					return false, err
				}
				return sar.Status.Allowed, nil
			})
			if err != nil {
				return "", fmt.Errorf("%s was not granted %s %s in %q: %w", user, attrs.Verb, r.Resources[0], ns, err)
			}
		}
	}
	clients, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return "", err
	}
	tr, err := clients.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}
