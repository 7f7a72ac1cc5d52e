"""Singer tap for Klaviyo segment growth reports."""
