package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConnectorReference names a Connector (cluster-scoped).
type ConnectorReference struct {
	// name of the Connector.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
}

// AuthSpec says how a Connection authenticates.
type AuthSpec struct {
	// method is apiToken, oauth2 or pat; the Connector must allow it.
	Method AuthMethod `json:"method"`
	// secretRef names a Secret in the Connection's namespace. Keys: apiToken → email,
	// apiToken; pat → token; oauth2 → accessToken, refreshToken, expiry (RFC 3339), written
	// by the operator.
	SecretRef SecretReference `json:"secretRef"`
}

// ScopeSpec narrows what a Connection syncs and searches.
type ScopeSpec struct {
	// containers are Jira project keys or Confluence space keys; empty means every
	// container the credential can see.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9_~.-]+$`
	Containers []string `json:"containers,omitempty"`
	// filter is a JQL or CQL clause ANDed onto sync and search queries.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Filter string `json:"filter,omitempty"`
}

// ProbeSpec configures the credential check.
type ProbeSpec struct {
	// interval between probes (jittered); defaults to the Connector's probeInterval.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="probe.interval must be at least 10s"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
}

// SinkSpec is where synced items are delivered.
type SinkSpec struct {
	// url receives HTTP POSTs of CloudEvents batches.
	URL URL `json:"url"`
	// secretRef names a Secret in the Connection's namespace whose key authorization is
	// sent as the Authorization header.
	// +optional
	SecretRef *SecretReference `json:"secretRef,omitempty"`
	// batchSize is the number of events per POST.
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	BatchSize int32 `json:"batchSize,omitempty"`
}

// SyncSpec configures incremental sync to a sink.
type SyncSpec struct {
	// suspend stops syncing (no vendor calls for sync) while true.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// interval between syncs (jittered); defaults to the Connector's syncInterval.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="sync.interval must be at least 10s"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// since is the lower bound (RFC 3339) of the first sync; unset means everything.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// sink receives the items; without it the Connection only probes.
	// +optional
	Sink *SinkSpec `json:"sink,omitempty"`
	// resyncRequest: any new value rewinds every cursor to since; acknowledged in
	// status.sync.lastHandledResyncRequest.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ResyncRequest string `json:"resyncRequest,omitempty"`
	// pruneInterval is how often full snapshots of live item ids are sent.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="sync.pruneInterval must be at least 1m"
	// +optional
	PruneInterval *metav1.Duration `json:"pruneInterval,omitempty"`
	// lookback is how far behind its cursor every run re-reads a container, so that items
	// the vendor makes visible late (search index lag, timestamps set before commit) are
	// still delivered; the ids already delivered inside the window are remembered, so a
	// re-read item is not sent twice. Defaults to the Connector's defaults.lookback, else
	// the connector's own default (5m for Jira and Confluence). 0s turns it off.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('24h')",message="sync.lookback must be at most 24h"
	// +optional
	Lookback *metav1.Duration `json:"lookback,omitempty"`
}

// WebhookSpec enables the webhook receiver for a Connection.
type WebhookSpec struct {
	// secretRef names a Secret in the Connection's namespace with key secret, the HMAC key
	// of X-Hub-Signature.
	SecretRef SecretReference `json:"secretRef"`
}

// ConnectionSpec is one tenant's credentialed link to a Connector.
type ConnectionSpec struct {
	// connectorRef names the Connector this Connection uses.
	ConnectorRef ConnectorReference `json:"connectorRef"`
	// auth says how to authenticate.
	Auth AuthSpec `json:"auth"`
	// scope narrows what is synced and searched.
	// +optional
	Scope ScopeSpec `json:"scope,omitempty"`
	// probe configures the credential check.
	// +optional
	Probe ProbeSpec `json:"probe,omitempty"`
	// sync configures incremental sync; unset means probe only.
	// +optional
	Sync *SyncSpec `json:"sync,omitempty"`
	// webhook enables the signed webhook receiver.
	// +optional
	Webhook *WebhookSpec `json:"webhook,omitempty"`
	// postgresql says what a Connection of a postgresql Connector syncs and how;
	// required for that type and refused for the others.
	// +optional
	PostgreSQL *PostgreSQLConnectionSpec `json:"postgresql,omitempty"`
}

// Sync modes of a PostgreSQL Connection.
const (
	PostgreSQLModeCursorColumn       = "cursorColumn"
	PostgreSQLModeLogicalReplication = "logicalReplication"
)

// PostgreSQLConnectionSpec is what a PostgreSQL Connection syncs and how.
// +kubebuilder:validation:XValidation:rule="self.mode != 'cursorColumn' || self.tables.all(t, has(t.cursorColumn))",message="every table needs a cursorColumn in mode cursorColumn (a timestamp column the application sets on every write, e.g. updated_at)"
type PostgreSQLConnectionSpec struct {
	// mode is cursorColumn (the default: rows ordered by a timestamp column and the primary
	// key, re-reading a look-back window; needs only SELECT) or logicalReplication (change
	// data capture through a publication and a replication slot the operator creates:
	// exact, with deletes; needs the REPLICATION attribute and ownership of the tables).
	// +kubebuilder:default=cursorColumn
	// +kubebuilder:validation:Enum=cursorColumn;logicalReplication
	// +optional
	Mode string `json:"mode,omitempty"`
	// tables are the tables synced, searched and read; each is a container.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +listType=map
	// +listMapKey=name
	Tables []PostgreSQLTable `json:"tables"`
}

// PostgreSQLTable is one table of a PostgreSQL Connection. Column names are written
// raw, as in the catalog (case and spaces included); the operator quotes them.
type PostgreSQLTable struct {
	// name is schema.table written raw, e.g. public.orders or sales.Order Lines; the
	// first dot separates the schema (quote a schema holding a dot: "my.schema".orders).
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=260
	// +kubebuilder:validation:XValidation:rule="self.contains('.') && !self.startsWith('.') && !self.endsWith('.')",message="name must be schema.table, e.g. public.orders"
	Name string `json:"name"`
	// primaryKey lists the key columns in order; empty means the table's primary key as
	// the catalog has it.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	PrimaryKey []string `json:"primaryKey,omitempty"`
	// cursorColumn is a timestamp (timestamptz or timestamp, read as UTC) column set on
	// every insert and update; it orders cursorColumn sync and is the items' updatedAt.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	CursorColumn string `json:"cursorColumn,omitempty"`
	// titleColumn is the column shown as the items' title.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	TitleColumn string `json:"titleColumn,omitempty"`
	// textColumns are the columns that make the items' text and that search matches.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	TextColumns []string `json:"textColumns,omitempty"`
}

// IdentityStatus is who the credential belongs to.
type IdentityStatus struct {
	// accountID is the vendor's account id.
	// +optional
	AccountID string `json:"accountID,omitempty"`
	// displayName is the vendor's display name.
	// +optional
	DisplayName string `json:"displayName,omitempty"`
	// organization is the vendor tenant the account belongs to, where the vendor names
	// one (a Salesforce org Id).
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Organization string `json:"organization,omitempty"`
	// timeZone is the account's time zone as the vendor reports it (IANA name).
	// +kubebuilder:validation:MaxLength=64
	// +optional
	TimeZone string `json:"timeZone,omitempty"`
	// serverVersion is the vendor's software version, where it reports one (PostgreSQL's
	// server_version).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ServerVersion string `json:"serverVersion,omitempty"`
}

// ProbeStatus is the outcome of the last successful probe that was recorded.
type ProbeStatus struct {
	// lastTime is when a probe was last recorded. A periodic probe with nothing new to
	// say (same identity, CredentialsValid still True, latency in the same class: under
	// 1s, under 5s, more) leaves this record as it is, so it writes no status; the record
	// is renewed at the first probe an hour after it, on a requested probe
	// (requested-at), or when any of those change. It may thus lag the last probe by up
	// to an hour; the connector_probe_duration_seconds metric has every probe.
	// +optional
	LastTime *metav1.Time `json:"lastTime,omitempty"`
	// latencyMillis is the latency of the recorded probe's identity call.
	// +optional
	LatencyMillis int64 `json:"latencyMillis,omitempty"`
	// vendorUsage says, once 90% of a metered vendor's request allowance is spent
	// (Salesforce's daily API requests), how much in steps of 90, 95, 98 and 100%, and
	// whether calls are being slowed; empty otherwise. The Ready message repeats it.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	VendorUsage string `json:"vendorUsage,omitempty"`
}

// CredentialsStatus describes OAuth2 credentials (never their values).
type CredentialsStatus struct {
	// expiresAt is when the current access token expires.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// lastRefreshTime is when the operator last refreshed the access token.
	// +optional
	LastRefreshTime *metav1.Time `json:"lastRefreshTime,omitempty"`
}

// ContainerSyncStatus is the sync state of one container.
type ContainerSyncStatus struct {
	// key is the project or space key.
	Key string `json:"key"`
	// name is the project or space name.
	// +optional
	Name string `json:"name,omitempty"`
	// cursor is opaque: the position up to which the sink has acknowledged items.
	// +optional
	Cursor string `json:"cursor,omitempty"`
	// itemsDelivered counts items the sink acknowledged for this container.
	// +optional
	ItemsDelivered int64 `json:"itemsDelivered,omitempty"`
	// lastSyncTime is when this container last finished a sync run.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
	// lastPruneTime is when the container's live item ids were last sent as snapshot
	// events (or, before the first snapshot, when its first backfill completed); for a
	// vendor with a deletion log, how far the deletions it reported reach.
	// +optional
	LastPruneTime *metav1.Time `json:"lastPruneTime,omitempty"`
	// lastPruneMode is how the last prune told the sink what was deleted: deletionLog
	// (the vendor's log of deletions since the prune before, sent as item.deleted
	// events) or snapshot (every live id as container.snapshot events: vendors without
	// a log, and a log that no longer reaches back to the prune before, purged).
	// +kubebuilder:validation:Enum=deletionLog;snapshot
	// +optional
	LastPruneMode string `json:"lastPruneMode,omitempty"`
}

// Prune modes of status.sync.containers[].lastPruneMode.
const (
	PruneModeDeletionLog = "deletionLog"
	PruneModeSnapshot    = "snapshot"
)

// SyncStatus is the state of sync.
type SyncStatus struct {
	// lastSyncTime is when the last sync run ended.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
	// lastSuccessfulSyncTime is when the last sync run that delivered everything ended.
	// +optional
	LastSuccessfulSyncTime *metav1.Time `json:"lastSuccessfulSyncTime,omitempty"`
	// itemsDelivered counts items the sink acknowledged, all containers together.
	// +optional
	ItemsDelivered int64 `json:"itemsDelivered,omitempty"`
	// lastHandledResyncRequest echoes spec.sync.resyncRequest once handled.
	// +optional
	LastHandledResyncRequest string `json:"lastHandledResyncRequest,omitempty"`
	// containers holds the per-container cursors.
	// +optional
	// +listType=map
	// +listMapKey=key
	Containers []ContainerSyncStatus `json:"containers,omitempty"`
	// position is where a Connection that syncs from its source's change stream
	// (PostgreSQL logicalReplication) resumes: the initial snapshot's progress, then the
	// stream position the sink has acknowledged. Opaque.
	// +optional
	// +kubebuilder:validation:MaxLength=8192
	Position string `json:"position,omitempty"`
}

// ConnectionStatus is the observed state of a Connection.
type ConnectionStatus struct {
	// observedGeneration is the generation of the last successful reconcile.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready, CredentialsValid, Synced, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// type is the Connector's type, copied for printing.
	// +optional
	Type ConnectorType `json:"type,omitempty"`
	// identity is who the credential belongs to.
	// +optional
	Identity *IdentityStatus `json:"identity,omitempty"`
	// probe is the outcome of the last successful probe.
	// +optional
	Probe *ProbeStatus `json:"probe,omitempty"`
	// credentials describes OAuth2 credentials.
	// +optional
	Credentials *CredentialsStatus `json:"credentials,omitempty"`
	// sync is the state of sync.
	// +optional
	Sync *SyncStatus `json:"sync,omitempty"`
	// lastHandledReconcileAt echoes the requested-at annotation once handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
	// postgresql shows the replication slot a logicalReplication Connection holds.
	// +optional
	PostgreSQL *PostgreSQLStatus `json:"postgresql,omitempty"`
}

// PostgreSQLStatus is the replication slot of a logicalReplication Connection, as the
// server reported it at the last probe.
type PostgreSQLStatus struct {
	// slot is the replication slot's name (connectors_ and the Connection's UID).
	// +optional
	Slot string `json:"slot,omitempty"`
	// publication is the publication's name (the slot's).
	// +optional
	Publication string `json:"publication,omitempty"`
	// confirmedLSN is the slot's confirmed_flush_lsn: every change before it reached the
	// sink.
	// +optional
	ConfirmedLSN string `json:"confirmedLSN,omitempty"`
	// retainedWALBytes is the WAL the slot keeps on the server (pg_current_wal_lsn() -
	// restart_lsn): it grows while the sync is stopped or behind.
	// +optional
	RetainedWALBytes int64 `json:"retainedWALBytes,omitempty"`
	// walStatus is the slot's wal_status (reserved, extended, unreserved, lost).
	// +optional
	WALStatus string `json:"walStatus,omitempty"`
}

// Connection is one tenant's credentialed link to a Connector.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=conn,categories=connectors
// +kubebuilder:printcolumn:name="Connector",type=string,JSONPath=`.spec.connectorRef.name`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.status.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Items",type=integer,JSONPath=`.status.sync.itemsDelivered`
// +kubebuilder:printcolumn:name="Last Sync",type=date,JSONPath=`.status.sync.lastSyncTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Connection struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ConnectionSpec `json:"spec"`

	// status is the observed state of the Connection. It defaults to observedGeneration -1 (as
	// Flux's kinds do), so that kstatus, Flux and Argo CD read a new object as InProgress
	// until the operator has reconciled it.
	// +kubebuilder:default={"observedGeneration":-1}
	// +optional
	Status ConnectionStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (c *Connection) GetConditions() []metav1.Condition { return c.Status.Conditions }

// SetConditions replaces the status conditions.
func (c *Connection) SetConditions(conds []metav1.Condition) { c.Status.Conditions = conds }

// ConnectionList is a list of Connections.
// +kubebuilder:object:root=true
type ConnectionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Connection `json:"items"`
}
