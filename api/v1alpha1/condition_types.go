package v1alpha1

// Condition types. Ready, CredentialsValid and Synced are normal-true: True is healthy.
// Reconciling and Stalled follow kstatus's abnormal-true convention: they are present only
// while True and removed otherwise.
const (
	// ReadyCondition summarises the object: True when it is fully usable.
	ReadyCondition = "Ready"
	// CredentialsValidCondition is True when the vendor accepted the Connection's credential
	// on the last probe, False when it rejected it or it could not be read.
	CredentialsValidCondition = "CredentialsValid"
	// SyncedCondition is True when the last sync delivered everything it read; absent when
	// the Connection has no sink.
	SyncedCondition = "Synced"
	// ReconcilingCondition is True while the operator is working towards the desired state.
	ReconcilingCondition = "Reconciling"
	// StalledCondition is True when only a human can make progress (a fixed Secret, spec or
	// Connector); the operator does not retry until one of them changes.
	StalledCondition = "Stalled"
)

// Condition reasons. They are API: tools match on them, so they never change.
const (
	// SucceededReason: the step or the whole reconcile succeeded.
	SucceededReason = "Succeeded"
	// ProgressingReason: work is under way (used with Reconciling=True and Ready=Unknown).
	ProgressingReason = "Progressing"
	// ConnectorNotFoundReason: spec.connectorRef names no Connector. Stalled.
	ConnectorNotFoundReason = "ConnectorNotFound"
	// ConnectorNotReadyReason: the Connector exists but is not Ready. Stalled until it is.
	ConnectorNotReadyReason = "ConnectorNotReady"
	// NamespaceNotAllowedReason: the Connector's allowedNamespaces does not match the
	// Connection's namespace. Stalled.
	NamespaceNotAllowedReason = "NamespaceNotAllowed"
	// AuthMethodNotAllowedReason: spec.auth.method is not in the Connector's authMethods.
	// Stalled.
	AuthMethodNotAllowedReason = "AuthMethodNotAllowed"
	// SecretNotFoundReason: a referenced Secret does not exist. Stalled until it appears.
	SecretNotFoundReason = "SecretNotFound"
	// SecretInvalidReason: a referenced Secret lacks a required key or holds an unusable
	// value. Stalled until it changes.
	SecretInvalidReason = "SecretInvalid"
	// CredentialsRejectedReason: the vendor answered 401 to the identity call. Stalled.
	CredentialsRejectedReason = "CredentialsRejected"
	// RefreshFailedReason: an OAuth2 refresh was refused (invalid_grant). Stalled.
	RefreshFailedReason = "RefreshFailed"
	// VendorUnreachableReason: the vendor timed out, reset, or answered 5xx. Transient:
	// retried with backoff.
	VendorUnreachableReason = "VendorUnreachable"
	// RateLimitedReason: the vendor answered 429. Transient: retried after Retry-After.
	RateLimitedReason = "RateLimited"
	// EgressDeniedReason: the vendor or sink address is refused by the egress guard.
	// Stalled.
	EgressDeniedReason = "EgressDenied"
	// SinkUnavailableReason: the sink timed out or answered 5xx/429. Transient.
	SinkUnavailableReason = "SinkUnavailable"
	// SinkRejectedReason: the sink answered another 4xx. Stalled.
	SinkRejectedReason = "SinkRejected"
	// SuspendedReason: spec.sync.suspend is true; no sync runs.
	SuspendedReason = "Suspended"
)

// RequestedAtAnnotation asks for an immediate probe and sync; its value is echoed in
// status.lastHandledReconcileAt once handled (the Flux convention).
const RequestedAtAnnotation = "connectors.unified.dev/requested-at"
