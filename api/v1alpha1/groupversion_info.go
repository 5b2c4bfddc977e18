// Package v1alpha1 contains the API types of the connectors.unified.dev group.
// +kubebuilder:object:generate=true
// +groupName=connectors.unified.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the objects in this package.
	GroupVersion = schema.GroupVersion{Group: "connectors.unified.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme. It depends on
	// apimachinery only, so the API package stays cheap to import.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Connector{}, &ConnectorList{}, &Connection{}, &ConnectionList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
