DROP TABLE document_reviews;
