# connector-operator: the Makefile is the contract. Every tool is pinned here and installed
# into bin/ by the Makefile itself, so a fresh machine with only Go can run every target.

# Tool and control-plane versions. K8S_VERSION follows the k8s.io/api minor in go.mod.
# v1.37.2 is refused by the module proxy (403), so the control plane uses v1.37.1.
K8S_VERSION ?= v1.37.1
ETCD_VERSION ?= v3.6.16
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# KUBEBUILDER_ASSETS for envtest: kube-apiserver and etcd built from source (see
# hack/build-control-plane.sh); setup-envtest's downloads are not reachable everywhere.
ENVTEST_ASSETS ?= $(LOCALBIN)/k8s
export KUBEBUILDER_ASSETS ?= $(ENVTEST_ASSETS)

GO_TEST_FLAGS ?= -count=1 -timeout=30m
# Fuzz targets run briefly by make test (package:target); make fuzz FUZZTIME=5m for longer.
FUZZ_TARGETS ?= ./connectors/atlassian:FuzzParseTime ./connectors/atlassian:FuzzADFToText \
	./connectors/atlassian:FuzzStorageToText ./connectors/jira:FuzzCursor ./connectors/jira:FuzzQuote \
	./connectors/confluence:FuzzCursor ./internal/egress:FuzzCheckURL ./internal/syncer:FuzzParseCursor \
	./internal/api:FuzzRequest ./connectors/salesforce/salesforcetest:FuzzParseSOQL \
	./connectors/salesforce/salesforcetest:FuzzParseSOSL ./connectors/salesforce:FuzzQuoteSOQL \
	./connectors/salesforce:FuzzEscapeSOSL ./connectors/salesforce:FuzzCursor ./connectors/salesforce:FuzzCheckFilter \
	./connectors/postgresql/pgrepl:FuzzDecode ./connectors/postgresql:FuzzParseTableName ./connectors/postgresql:FuzzItemID
FUZZTIME ?= 5s

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the API types and markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." paths="./internal/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: chart-crds
chart-crds: manifests ## Copy the generated CRDs into the Helm chart (never by hand).
	mkdir -p charts/connector-operator/crds
	cp config/crd/bases/*.yaml charts/connector-operator/crds/

.PHONY: chart-rbac
chart-rbac: manifests ## Generate the chart's manager ClusterRole and leader-election Role from config/rbac/role.yaml (never by hand).
	hack/chart-rbac.sh config/rbac/role.yaml charts/connector-operator/templates

.PHONY: api-docs
api-docs: manifests ## Write docs/reference/api.md (CRD field reference) from config/crd/bases.
	go run ./hack/api-docs -crds config/crd/bases -out docs/reference/api.md

.PHONY: metrics-docs
metrics-docs: ## Rewrite the generated columns of docs/reference/metrics.md from the manager's metrics registry.
	go test -count=1 ./test/reference -run '^TestMetricsReference$$' -update

.PHONY: fmt
fmt: ## go fmt the tree.
	go fmt ./...

.PHONY: vet
vet: ## go vet the tree.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: test
test: manifests generate fmt vet control-plane postgres ## Run every test, envtest suites included, against a real kube-apiserver, then each fuzz target briefly.
	go test $(GO_TEST_FLAGS) ./...
	$(MAKE) fuzz

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME.
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo ">> fuzz $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
		go test -run='^$$' -fuzz="^$${t#*:}$$" -fuzztime=$(FUZZTIME) "$${t%%:*}"; \
	done

.PHONY: bench
bench: control-plane postgres ## Run the benchmarks (figures for the issues' closing notes).
	go test -run='^$$' -bench=. -benchmem -count=1 -timeout=40m ./...

.PHONY: verify
verify: manifests generate fmt chart-crds chart-rbac api-docs metrics-docs ## Fail when generated or formatted files are stale.
	go mod tidy
	@if [ -n "$$(git status --porcelain)" ]; then \
		echo "generated files are stale; run 'make manifests generate fmt chart-crds chart-rbac api-docs metrics-docs' and commit:"; \
		git status --porcelain; git --no-pager diff --stat; exit 1; fi

.PHONY: dev
dev: control-plane kubectl manifests postgres ## Run everything locally: control plane, CRDs, fake Atlassian, samples, manager.
	go run ./hack/dev --assets $(ENVTEST_ASSETS) --kubectl $(LOCALBIN)/k8s/kubectl

.PHONY: dev-smoke
dev-smoke: control-plane kubectl manifests postgres ## make dev, but exit once the samples reach their expected states (CI).
	go run ./hack/dev --assets $(ENVTEST_ASSETS) --kubectl $(LOCALBIN)/k8s/kubectl --smoke

##@ Build

.PHONY: build
build: generate fmt vet ## Build the manager binary and the kubectl plugin (bin/kubectl-connectors).
	go build -o $(LOCALBIN)/manager .
	go build -o $(LOCALBIN)/kubectl-connectors ./cmd/kubectl-connectors

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig.
	go run . --leader-elect=false

##@ Tools

.PHONY: control-plane
control-plane: $(ENVTEST_ASSETS)/kube-apiserver $(ENVTEST_ASSETS)/etcd ## Build kube-apiserver and etcd from source into bin/k8s.
$(ENVTEST_ASSETS)/kube-apiserver $(ENVTEST_ASSETS)/etcd:
	hack/build-control-plane.sh $(ENVTEST_ASSETS) $(K8S_VERSION) $(ETCD_VERSION)

.PHONY: postgres
postgres: ## Install the PostgreSQL server (Debian package) the tests start throwaway clusters with.
	hack/install-postgres.sh

.PHONY: kubectl
kubectl: $(ENVTEST_ASSETS)/kubectl ## Build kubectl from source into bin/k8s (for make dev).
$(ENVTEST_ASSETS)/kubectl:
	hack/build-control-plane.sh $(ENVTEST_ASSETS) $(K8S_VERSION) $(ETCD_VERSION) kubectl

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT)
$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $(GOLANGCI_LINT)

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
