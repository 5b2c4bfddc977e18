package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// URL is an absolute http or https URL without userinfo, query or fragment. The API
// server refuses anything else; the operator additionally refuses plain http for vendors at
// run time unless started with --allow-insecure-vendor-urls.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=2048
// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http'] && size(url(self).getHostname()) > 0",message="must be an absolute URL with scheme https or http and a host, e.g. https://acme.atlassian.net"
// +kubebuilder:validation:XValidation:rule="!self.contains('@')",message="must not contain userinfo (user:password@); put credentials in a Secret"
// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('#')",message="must not contain a query or a fragment"
type URL string

// EndpointURL is a Connector's baseURL: an absolute URL without userinfo, query or
// fragment whose scheme the Connector's type decides (https or http for SaaS vendors,
// postgres or postgresql for databases; see ConnectorSpec). Credentials never go in it.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=2048
// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http', 'postgres', 'postgresql'] && size(url(self).getHostname()) > 0",message="must be an absolute URL with scheme https or http (postgres or postgresql for a database) and a host, e.g. https://acme.atlassian.net or postgres://db.internal:5432/app"
// +kubebuilder:validation:XValidation:rule="!self.contains('@')",message="must not contain userinfo (user:password@); put credentials in a Secret"
// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('#')",message="must not contain a query or a fragment"
type EndpointURL string

// ConnectorType is the vendor a Connector points at.
// +kubebuilder:validation:Enum=jira;confluence;salesforce;postgresql
type ConnectorType string

// Connector types.
const (
	ConnectorTypeJira       ConnectorType = "jira"
	ConnectorTypeConfluence ConnectorType = "confluence"
	ConnectorTypeSalesforce ConnectorType = "salesforce"
	ConnectorTypePostgreSQL ConnectorType = "postgresql"
)

// AuthMethod is a way a Connection authenticates to the vendor.
// +kubebuilder:validation:Enum=apiToken;oauth2;pat;clientCredentials;password
type AuthMethod string

// Auth methods. Which a Connector type offers, and the Secret keys each needs, is the
// connector's to say (connectors.Description).
const (
	AuthMethodAPIToken AuthMethod = "apiToken"
	AuthMethodOAuth2   AuthMethod = "oauth2"
	AuthMethodPAT      AuthMethod = "pat"
	// AuthMethodClientCredentials is the OAuth 2.0 client credentials grant of the
	// tenant's own client (Salesforce connected app): Secret keys clientID, clientSecret.
	AuthMethodClientCredentials AuthMethod = "clientCredentials"
	// AuthMethodPassword is a database role's password (PostgreSQL): Secret keys username,
	// password, and optionally tls.crt/tls.key for a client certificate.
	AuthMethodPassword AuthMethod = "password"
)

// SecretReference names a Secret. For a Connection it is always in the Connection's own
// namespace; for a Connector in the operator's namespace.
type SecretReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
}

// OAuth2Spec configures the OAuth 2.0 (3LO) client a Connector offers its Connections.
type OAuth2Spec struct {
	// clientSecretRef names a Secret in the operator's namespace with keys clientID and
	// clientSecret.
	ClientSecretRef SecretReference `json:"clientSecretRef"`
	// scopes requested at authorization, e.g. read:jira-work offline_access.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Scopes []string `json:"scopes,omitempty"`
	// authorizeURL overrides the vendor's authorization endpoint (Atlassian's
	// https://auth.atlassian.com/authorize; Salesforce's {baseURL}/services/oauth2/authorize).
	// +optional
	AuthorizeURL URL `json:"authorizeURL,omitempty"`
	// tokenURL overrides the vendor's token endpoint (Atlassian's
	// https://auth.atlassian.com/oauth/token; Salesforce's {baseURL}/services/oauth2/token).
	// +optional
	TokenURL URL `json:"tokenURL,omitempty"`
	// apiBaseURL overrides the gateway root https://api.atlassian.com used with Bearer
	// tokens on Atlassian Cloud.
	// +optional
	APIBaseURL URL `json:"apiBaseURL,omitempty"`
}

// RateLimitSpec bounds the request rate of each Connection of a Connector.
type RateLimitSpec struct {
	// requestsPerSecond is the sustained rate per Connection.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	RequestsPerSecond int32 `json:"requestsPerSecond,omitempty"`
	// burst is the token bucket size per Connection.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	Burst int32 `json:"burst,omitempty"`
}

// ConnectorDefaults are the intervals a Connection inherits when it sets none.
type ConnectorDefaults struct {
	// probeInterval is how often Connections check their credential (jittered).
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="probeInterval must be at least 10s"
	// +optional
	ProbeInterval *metav1.Duration `json:"probeInterval,omitempty"`
	// syncInterval is how often Connections sync (jittered).
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="syncInterval must be at least 10s"
	// +optional
	SyncInterval *metav1.Duration `json:"syncInterval,omitempty"`
	// lookback is the sync look-back window of Connections that set none (see
	// Connection spec.sync.lookback); unset means the connector's own default.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('24h')",message="lookback must be at most 24h"
	// +optional
	Lookback *metav1.Duration `json:"lookback,omitempty"`
}

// ConnectorSpec is a vendor endpoint a platform team offers to tenants.
// +kubebuilder:validation:XValidation:rule="(has(self.authMethods) && 'oauth2' in self.authMethods) == has(self.oauth2)",message="oauth2 must be set when authMethods allows oauth2, and only then"
// +kubebuilder:validation:XValidation:rule="!(has(self.authMethods) && 'oauth2' in self.authMethods) || !(self.type in ['jira', 'confluence']) || self.deployment != 'cloud' || has(self.cloudID)",message="cloudID is required when oauth2 is allowed on Atlassian Cloud"
// +kubebuilder:validation:XValidation:rule="!has(self.salesforce) || self.type == 'salesforce'",message="salesforce settings are only for type salesforce"
// +kubebuilder:validation:XValidation:rule="!has(self.postgresql) || self.type == 'postgresql'",message="postgresql settings are only for type postgresql"
// +kubebuilder:validation:XValidation:rule="!isURL(self.baseURL) || (self.type == 'postgresql' ? url(self.baseURL).getScheme() in ['postgres', 'postgresql'] : url(self.baseURL).getScheme() in ['https', 'http'])",message="baseURL must use scheme postgres or postgresql for type postgresql (postgres://host:5432/dbname), https or http for the other types"
// +kubebuilder:validation:XValidation:rule="self.type != 'postgresql' || self.baseURL.matches('^postgres(ql)?://[^/]+/[^/]+$')",message="baseURL of a postgresql Connector must name the database: postgres://host:5432/dbname"
type ConnectorSpec struct {
	// type is the vendor: jira, confluence, salesforce or postgresql. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="type is immutable"
	Type ConnectorType `json:"type"`
	// baseURL is the vendor site root, for example https://acme.atlassian.net, or for
	// postgresql the server and database, postgres://db.internal:5432/app (the port
	// defaults to 5432).
	BaseURL EndpointURL `json:"baseURL"`
	// deployment is cloud (Atlassian Cloud) or datacenter (self-hosted Data Center).
	// +kubebuilder:default=cloud
	// +kubebuilder:validation:Enum=cloud;datacenter
	// +optional
	Deployment string `json:"deployment,omitempty"`
	// cloudID is the Atlassian Cloud site id; required when oauth2 is allowed on cloud.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +optional
	CloudID string `json:"cloudID,omitempty"`
	// authMethods are the auth methods Connections may use.
	// +kubebuilder:default={apiToken}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +listType=set
	// +optional
	AuthMethods []AuthMethod `json:"authMethods,omitempty"`
	// oauth2 configures the OAuth 2.0 client; required iff authMethods allows oauth2.
	// +optional
	OAuth2 *OAuth2Spec `json:"oauth2,omitempty"`
	// rateLimit bounds the request rate of each Connection.
	// +kubebuilder:default={}
	// +optional
	RateLimit RateLimitSpec `json:"rateLimit,omitempty"`
	// allowedNamespaces selects the namespaces whose Connections may use this Connector;
	// unset means every namespace.
	// +optional
	AllowedNamespaces *metav1.LabelSelector `json:"allowedNamespaces,omitempty"`
	// defaults are the intervals Connections inherit.
	// +kubebuilder:default={}
	// +optional
	Defaults ConnectorDefaults `json:"defaults,omitempty"`
	// salesforce holds the settings of a salesforce Connector.
	// +optional
	Salesforce *SalesforceSpec `json:"salesforce,omitempty"`
	// postgresql holds the settings of a postgresql Connector.
	// +optional
	PostgreSQL *PostgreSQLConnectorSpec `json:"postgresql,omitempty"`
}

// SalesforceSpec holds what only a Salesforce Connector needs.
type SalesforceSpec struct {
	// apiVersion is the REST API version data calls use, e.g. v66.0.
	// +kubebuilder:default="v66.0"
	// +kubebuilder:validation:Pattern=`^v[0-9]{2,3}\.0$`
	// +kubebuilder:validation:MaxLength=8
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
}

// SSL modes of a PostgreSQL Connector.
const (
	SSLModeVerifyFull = "verify-full"
	SSLModeRequire    = "require"
	SSLModeDisable    = "disable"
)

// PostgreSQLConnectorSpec holds what only a PostgreSQL Connector needs.
type PostgreSQLConnectorSpec struct {
	// sslMode is verify-full (TLS, the server certificate checked against caRef, else the
	// system roots, and its name against baseURL's host), require (TLS without checking the
	// certificate: encryption only) or disable (plain text, refused at run time unless the
	// operator runs with --allow-insecure-vendor-urls, for local development).
	// +kubebuilder:default=verify-full
	// +kubebuilder:validation:Enum=verify-full;require;disable
	// +optional
	SSLMode string `json:"sslMode,omitempty"`
	// caRef names the PEM CA bundle that signs the server's certificate: a key of a
	// ConfigMap or Secret in the operator's namespace. Unset means the system roots.
	// +optional
	CARef *KeyReference `json:"caRef,omitempty"`
}

// KeyReference names one key of a ConfigMap or a Secret in the operator's namespace.
type KeyReference struct {
	// kind is ConfigMap or Secret.
	// +kubebuilder:default=ConfigMap
	// +kubebuilder:validation:Enum=ConfigMap;Secret
	// +optional
	Kind string `json:"kind,omitempty"`
	// name of the ConfigMap or Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
	// key in its data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// ConnectorStatus is the observed state of a Connector.
type ConnectorStatus struct {
	// observedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// connections counts the Connections that reference this Connector.
	// +optional
	Connections int32 `json:"connections"`
	// readyConnections counts those of them that are Ready.
	// +optional
	ReadyConnections int32 `json:"readyConnections"`
}

// Connector is a vendor endpoint (a Jira or Confluence site) offered to tenants.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cnr,categories=connectors
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.baseURL`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Connections",type=integer,JSONPath=`.status.connections`
// +kubebuilder:printcolumn:name="Ready Connections",type=integer,JSONPath=`.status.readyConnections`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Connector struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ConnectorSpec `json:"spec"`

	// status is the observed state of the Connector. It defaults to observedGeneration -1 (as
	// Flux's kinds do), so that kstatus, Flux and Argo CD read a new object as InProgress
	// until the operator has reconciled it.
	// +kubebuilder:default={"observedGeneration":-1}
	// +optional
	Status ConnectorStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (c *Connector) GetConditions() []metav1.Condition { return c.Status.Conditions }

// SetConditions replaces the status conditions.
func (c *Connector) SetConditions(conds []metav1.Condition) { c.Status.Conditions = conds }

// AllowsAuthMethod reports whether Connections may use m with this Connector.
func (c *Connector) AllowsAuthMethod(m AuthMethod) bool {
	methods := c.Spec.AuthMethods
	if len(methods) == 0 {
		methods = []AuthMethod{AuthMethodAPIToken}
	}
	for _, a := range methods {
		if a == m {
			return true
		}
	}
	return false
}

// ConnectorList is a list of Connectors.
// +kubebuilder:object:root=true
type ConnectorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Connector `json:"items"`
}
