pub mod keyspace;
