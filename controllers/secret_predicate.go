package controllers

import (
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/unified-connectors/connector-operator/internal/oauth"
)

// secretChangedPredicate drops the Secret updates that take or release the OAuth2
// refresh lock (oauth.LockAnnotation): the refresher writes them around every refresh,
// so a refresh refused with invalid_grant would otherwise wake the Connection it just
// stalled, which would refresh again, in a loop of token calls. A human's change to a
// stalled Connection's Secret comes with the lock absent before and after, and passes; a
// new authorization (the callback's oauth.AuthorizedAnnotation) always passes, even when
// it also clears a lock.
func secretChangedPredicate() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		if e.ObjectOld == nil || e.ObjectNew == nil {
			return true
		}
		oldA, newA := e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()
		if oldA[oauth.AuthorizedAnnotation] != newA[oauth.AuthorizedAnnotation] {
			return true
		}
		return oldA[oauth.LockAnnotation] == newA[oauth.LockAnnotation]
	}}
}
