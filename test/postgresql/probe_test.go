package postgresql_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/unified-connectors/connector-operator/api/v1alpha1"
	"github.com/unified-connectors/connector-operator/internal/leakcheck"
)

// TestLeakCheckFindsCredentials makes sure the leak check would see a password of this
// suite's kind, whole or in part.
func TestLeakCheckFindsCredentials(t *testing.T) {
	pw := (&leakcheck.Secrets{}).Token("pg-password")
	if got := leakcheck.Find(map[string]string{"logs": `"password":"` + pw[3:20] + `"`}, []string{pw}); len(got) != 1 {
		t.Errorf("part of a password was not found: %v", got)
	}
}

// 1. A role with SELECT on a table: Ready, the identity is the role on the database,
// the server's version is PostgreSQL 15's.
func TestProbeReady(t *testing.T) {
	t.Parallel()
	s, g := testEnv(t), NewWithT(t)
	exec(t, s.pg, `CREATE TABLE public.probe_ready (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())`)
	role := s.role(t, s.pg)
	exec(t, s.pg, fmt.Sprintf(`GRANT SELECT ON public.probe_ready TO %q`, role))
	s.connector(t, "pg-ready", s.pg, nil)
	s.connection(t, "ready", "pg-ready", secretOf(role), cursorMode(table("public.probe_ready", "updated_at", "")), "", 0, nil)
	got := s.ready(t, "ready")
	g.Expect(got.Status.Type).To(BeEquivalentTo("postgresql"))
	g.Expect(got.Status.Identity).NotTo(BeNil())
	g.Expect(got.Status.Identity.AccountID).To(Equal(role))
	g.Expect(got.Status.Identity.Organization).To(Equal(db))
	g.Expect(got.Status.Identity.ServerVersion).To(HavePrefix("15"))
	g.Expect(condition(got, v1alpha1.CredentialsValidCondition).Status).To(Equal(metav1.ConditionTrue))
	t.Logf("identity: %+v", *got.Status.Identity)
}

// 2. A wrong password: CredentialsRejected, Stalled, and no login loop: the server logs
// a handful of failed logins for the role, not one per backoff step.
func TestWrongPasswordStalls(t *testing.T) {
	t.Parallel()
	s, g := testEnv(t), NewWithT(t)
	exec(t, s.pg, `CREATE TABLE public.wrong_pw (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())`)
	role := s.role(t, s.pg)
	exec(t, s.pg, fmt.Sprintf(`GRANT SELECT ON public.wrong_pw TO %q`, role))
	s.secret(t, "wrong-pw", role, secrets.Token("pg-wrong"))
	s.connector(t, "pg-wrong-pw", s.pg, nil)
	s.connection(t, "wrong-pw", "pg-wrong-pw", "wrong-pw", cursorMode(table("public.wrong_pw", "updated_at", "")), "", 0, nil)
	g.Eventually(func(g Gomega) {
		c := s.get(g, "wrong-pw")
		r := condition(c, v1alpha1.ReadyCondition)
		g.Expect(r.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(r.Reason).To(Equal(v1alpha1.CredentialsRejectedReason), r.Message)
		g.Expect(condition(c, v1alpha1.StalledCondition).Status).To(Equal(metav1.ConditionTrue))
	}, timeout, poll).Should(Succeed())
	failed := func() int {
		b, err := os.ReadFile(s.pg.LogFile)
		must(t, err)
		return strings.Count(string(b), fmt.Sprintf(`password authentication failed for user "%s"`, role))
	}
	atStall := failed()
	g.Expect(atStall).To(BeNumerically(">=", 1), "the server saw the failed login")
	g.Consistently(failed, 5*time.Second, 250*time.Millisecond).Should(BeNumerically("<=", atStall+1), "no login loop once stalled")
	g.Expect(failed()).To(BeNumerically("<=", 5), "a handful of failed logins in all")
	t.Logf("failed logins: %d at the stall, %d five seconds later", atStall, failed())
}

// 3. A role that may read one of two tables: not Ready, and the message names the
// table it cannot read.
func TestMissingSelectNamesTable(t *testing.T) {
	t.Parallel()
	s, g := testEnv(t), NewWithT(t)
	exec(t, s.pg, `CREATE TABLE public.granted_orders (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now());
		CREATE TABLE public.secret_salaries (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())`)
	role := s.role(t, s.pg)
	exec(t, s.pg, fmt.Sprintf(`GRANT SELECT ON public.granted_orders TO %q`, role))
	s.connector(t, "pg-noselect", s.pg, nil)
	s.connection(t, "noselect", "pg-noselect", secretOf(role), cursorMode(
		table("public.granted_orders", "updated_at", ""), table("public.secret_salaries", "updated_at", "")), "", 0, nil)
	g.Eventually(func(g Gomega) {
		r := condition(s.get(g, "noselect"), v1alpha1.ReadyCondition)
		g.Expect(r.Status).To(Equal(metav1.ConditionFalse), "%s: %s", r.Reason, r.Message)
		g.Expect(r.Message).To(ContainSubstring("secret_salaries"), r.Reason)
		g.Expect(r.Message).NotTo(ContainSubstring("granted_orders"))
	}, timeout, poll).Should(Succeed())
	r := condition(s.get(g, "noselect"), v1alpha1.ReadyCondition)
	t.Logf("Ready: %s: %s", r.Reason, r.Message)
}

// 4. TLS: verify-full against the server's CA is Ready (TestProbeReady); against
// another CA the Connection is not Ready and says why (the certificate); sslMode
// require works without a CA.
func TestTLS(t *testing.T) {
	t.Parallel()
	s, g := testEnv(t), NewWithT(t)
	ctx := context.Background()
	exec(t, s.pg, `CREATE TABLE public.tls_rows (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())`)
	role := s.role(t, s.pg)
	exec(t, s.pg, fmt.Sprintf(`GRANT SELECT ON public.tls_rows TO %q`, role))
	tables := cursorMode(table("public.tls_rows", "updated_at", ""))

	must(t, s.k8s.Create(ctx, configMap("pg-other-ca", s.pg.OtherCAPEM)))
	s.connector(t, "pg-other-ca", s.pg, func(spec *v1alpha1.ConnectorSpec) {
		spec.PostgreSQL.CARef.Name = "pg-other-ca"
	})
	s.connection(t, "other-ca", "pg-other-ca", secretOf(role), tables, "", 0, nil)
	s.connector(t, "pg-require", s.pg, func(spec *v1alpha1.ConnectorSpec) {
		spec.PostgreSQL = &v1alpha1.PostgreSQLConnectorSpec{SSLMode: v1alpha1.SSLModeRequire}
	})
	s.connection(t, "require", "pg-require", secretOf(role), tables, "", 0, nil)

	certificate := regexp.MustCompile(`(?i)certificate`)
	g.Eventually(func(g Gomega) {
		r := condition(s.get(g, "other-ca"), v1alpha1.ReadyCondition)
		g.Expect(r.Status).To(Equal(metav1.ConditionFalse), "%s: %s", r.Reason, r.Message)
		g.Expect(r.Message).To(MatchRegexp(certificate.String()), r.Reason)
	}, timeout, poll).Should(Succeed())
	r := condition(s.get(g, "other-ca"), v1alpha1.ReadyCondition)
	t.Logf("wrong CA: Ready %s: %s", r.Reason, r.Message)
	got := s.ready(t, "require")
	g.Expect(got.Status.Identity).NotTo(BeNil())
	g.Expect(got.Status.Identity.AccountID).To(Equal(role))
}
