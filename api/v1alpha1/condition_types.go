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
	// the Connection has no sink, and while the Connection cannot be served (its
	// Connector refuses it or is not ready, or its credential stalled: Ready says why),
	// for the sync engine stops at once then and starts again once it is fixed.
	SyncedCondition = "Synced"
	// ReconcilingCondition is True while the operator is working towards the desired state.
	ReconcilingCondition = "Reconciling"
	// StalledCondition is True when only a human can make progress (a fixed Secret, spec or
	// Connector); the operator does not retry until one of them changes.
	StalledCondition = "Stalled"
)

// Condition reasons. They are API: tools match on them, so they never change.
//
// "Stalled" below means: on Ready=False with Stalled=True (kstatus Failed), not retried on
// a timer; the Connection, its Secrets, its Connector or its namespace's labels changing
// wake the operator again, and so does the requested-at annotation. "Transient" means: on
// Ready=False with Reconciling=True (kstatus InProgress), retried with exponential
// backoff, or after the vendor's Retry-After when it gave one. internal/outcome maps
// every failure to one of these, in one table.
const (
	// SucceededReason: the step or the whole reconcile succeeded.
	SucceededReason = "Succeeded"
	// ProgressingReason: work is under way (used with Reconciling=True and Ready=Unknown).
	ProgressingReason = "Progressing"
	// ConnectorNotFoundReason: spec.connectorRef names no Connector. Stalled.
	ConnectorNotFoundReason = "ConnectorNotFound"
	// ConnectorNotReadyReason: the Connector exists but is not Ready. Stalled while the
	// Connector is Ready=False (or its type is not registered); transient, looked at again
	// within a minute, while the Connector is still being reconciled (Ready absent or
	// Unknown, or an observedGeneration behind its generation).
	ConnectorNotReadyReason = "ConnectorNotReady"
	// NamespaceNotAllowedReason: the Connector's allowedNamespaces does not match the
	// Connection's namespace, or that selector is invalid. Stalled.
	NamespaceNotAllowedReason = "NamespaceNotAllowed"
	// AuthMethodNotAllowedReason: spec.auth.method is not in the Connector's authMethods.
	// Stalled.
	AuthMethodNotAllowedReason = "AuthMethodNotAllowed"
	// SecretNotFoundReason: a referenced Secret (the credential, the sink authorization,
	// or a Connector's OAuth2 client) does not exist. Stalled until it appears.
	SecretNotFoundReason = "SecretNotFound"
	// SecretInvalidReason: a referenced Secret lacks a required key or holds an unusable
	// value. Stalled until it changes.
	SecretInvalidReason = "SecretInvalid"
	// CredentialsRejectedReason: the vendor refused the credential or what the Connection
	// asks of it: 401, or 403 on the identity call; or, on any call, another 4xx but 429
	// (404, 400, 403, 409, 422: a scope container that does not exist or the credential
	// cannot read, a filter the vendor refuses), which asking again would only repeat.
	// Stalled, on the probe and in the sync alike.
	CredentialsRejectedReason = "CredentialsRejected"
	// RefreshFailedReason: an OAuth2 refresh failed (each failure also gives a Warning
	// Event). Stalled when the token endpoint refused it (invalid_grant: a human must
	// authorise again); transient when the endpoint was unreachable or answered 5xx.
	RefreshFailedReason = "RefreshFailed"
	// VendorUnreachableReason: the vendor timed out, reset, or answered 5xx (or an
	// unusable 2xx). Transient: retried with backoff, or after its Retry-After (a 503 may
	// send one). During a sync it shows on Synced=False only; Ready stays True.
	VendorUnreachableReason = "VendorUnreachable"
	// RateLimitedReason: the vendor answered 429. Transient: retried after its
	// Retry-After (nothing calls the vendor inside that window), or with backoff. During
	// a sync it shows on Synced=False only; Ready stays True.
	RateLimitedReason = "RateLimited"
	// EgressDeniedReason: the vendor or sink address is refused by the egress guard,
	// before the request or at dial time after DNS. Stalled, on the Connector, the probe
	// and the sync alike.
	EgressDeniedReason = "EgressDenied"
	// SinkUnavailableReason: the sink timed out or answered 5xx, 408 or 429. Transient: the
	// engine retries with backoff (honouring Retry-After) and the cursor stays;
	// Synced=False and Ready=False with Reconciling=True meanwhile.
	SinkUnavailableReason = "SinkUnavailable"
	// SinkRejectedReason: the sink answered another 4xx. Stalled (Synced=False and
	// Ready=False).
	SinkRejectedReason = "SinkRejected"
	// SuspendedReason: spec.sync.suspend is true; no sync runs. On Synced=False only:
	// Ready stays True.
	SuspendedReason = "Suspended"
	// ScopeTooLargeReason: spec.scope.containers is empty and the credential sees more
	// containers than one Connection tracks in status (1,000, the same bound as an explicit
	// spec.scope.containers list). Stalled: list the containers to sync.
	ScopeTooLargeReason = "ScopeTooLarge"
	// StreamLostReason: the source no longer holds the change history the Connection's
	// cursor points into (a PostgreSQL replication slot whose WAL was removed); a resync
	// (spec.sync.resyncRequest) rebuilds it from a new snapshot.
	StreamLostReason = "StreamLost"
	// SpecInvalidReason: the Connection's spec does not fit its Connector's type (a
	// postgresql block on another type, a table name that cannot be parsed).
	SpecInvalidReason = "SpecInvalid"
)

// RequestedAtAnnotation asks for an immediate probe and sync; its value is echoed in
// status.lastHandledReconcileAt once handled (the Flux convention).
const RequestedAtAnnotation = "connectors.unified.dev/requested-at"
