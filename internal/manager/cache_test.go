package manager_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/manager"
)

// TestNoSecretDataCached: a Secret applied with kubectl carries its data in the
// last-applied-configuration annotation. The manager watches Secrets as metadata only,
// and its cache keeps neither that annotation nor managedFields; other objects lose
// their managedFields too.
func TestNoSecretDataCached(t *testing.T) {
	env := controlPlane(t)
	mgr := startManager(t, manager.Options{})
	ctx := context.Background()

	// What `kubectl apply` writes: the applied manifest, data and all, in an annotation.
	const token = "tok-0123456789abcdefghijklmnopqrstuv"
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "applied", Annotations: map[string]string{"team": "a"}},
		StringData: map[string]string{"email": "mia@example.com", "apiToken": token},
	}
	applied, err := json.Marshal(secret)
	if err != nil {
		t.Fatal(err)
	}
	secret.Annotations[corev1.LastAppliedConfigAnnotation] = string(applied)
	if err := env.Client.Create(ctx, secret, client.FieldOwner("kubectl-client-side-apply")); err != nil {
		t.Fatal(err)
	}
	var stored corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(secret), &stored); err != nil {
		t.Fatal(err)
	}
	if stored.Annotations[corev1.LastAppliedConfigAnnotation] == "" || len(stored.ManagedFields) == 0 {
		t.Fatalf("the API server should hold the annotation and managedFields: %v %v", stored.Annotations, stored.ManagedFields)
	}

	// The controllers' Secret informer (metadata only) is the one this Get reads.
	cached := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}}
	waitCached(t, mgr.GetCache(), client.ObjectKeyFromObject(secret), cached)
	if v, ok := cached.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
		t.Errorf("the cached Secret keeps the last-applied annotation (%d bytes)", len(v))
	}
	if cached.Annotations["team"] != "a" {
		t.Errorf("other annotations must stay: %v", cached.Annotations)
	}
	if len(cached.ManagedFields) > 0 {
		t.Errorf("the cached Secret keeps managedFields: %v", cached.ManagedFields)
	}

	// Every cached object loses managedFields: a Connector, read typed from the cache.
	cnr := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Name: "cache"},
		Spec: v1alpha1.ConnectorSpec{Type: v1alpha1.ConnectorTypeJira, BaseURL: "https://acme.atlassian.net"}}
	if err := env.Client.Create(ctx, cnr); err != nil {
		t.Fatal(err)
	}
	var cachedCnr v1alpha1.Connector
	waitCached(t, mgr.GetCache(), client.ObjectKeyFromObject(cnr), &cachedCnr)
	if len(cachedCnr.ManagedFields) > 0 {
		t.Errorf("the cached Connector keeps managedFields: %v", cachedCnr.ManagedFields)
	}
}

func waitCached(t *testing.T, c client.Reader, key client.ObjectKey, obj client.Object) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Get(context.Background(), key, obj)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached the cache: %v", key, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
