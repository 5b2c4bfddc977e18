package main

import (
	"context"

	"github.com/unified-connectors/connector-operator/internal/pgtest"
)

// postgresPort is where config/samples/postgresql.yaml finds the demo server.
const postgresPort = 8093

// demoRows is how many rows the demo tables hold together (tickets and customers).
const demoRows = 60 + 20

// startPostgres starts the demo PostgreSQL server with database demo, the read-only role
// demo_reader of config/samples/postgresql.yaml, and two demo tables.
func startPostgres(ctx context.Context) (*pgtest.Server, error) {
	pg, err := pgtest.New(pgtest.Options{Databases: []string{"demo"}, Port: postgresPort})
	if err != nil {
		return nil, err
	}
	for _, stmt := range []string{
		`CREATE TABLE public.customers (id bigint PRIMARY KEY, name text NOT NULL, notes text,
			updated_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO public.customers (id, name, notes)
			SELECT g, 'Customer ' || g, 'Demo customer number ' || g || ', on the ' || (ARRAY['gold','silver','bronze'])[1 + g % 3] || ' plan'
			FROM generate_series(1, 20) g`,
		`CREATE TABLE public.tickets (id bigint PRIMARY KEY, customer_id bigint REFERENCES public.customers,
			subject text NOT NULL, body text, status text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO public.tickets (id, customer_id, subject, body, status)
			SELECT g, 1 + g % 20, 'Ticket ' || g || ': ' || (ARRAY['login fails','invoice missing','release blocked','slow search'])[1 + g % 4],
				'Reported by customer ' || (1 + g % 20) || '. Steps to reproduce are in the attached notes.',
				(ARRAY['open','pending','closed'])[1 + g % 3]
			FROM generate_series(1, 60) g`,
		`CREATE ROLE demo_reader LOGIN PASSWORD 'demo-reader-password'`,
		`GRANT SELECT ON public.customers, public.tickets TO demo_reader`,
	} {
		if err := pg.Exec(ctx, "demo", stmt); err != nil {
			_ = pg.Close()
			return nil, err
		}
	}
	return pg, nil
}
