// Renders the gateway's own OpenAPI document. "Try it out" sends requests to this gateway (the
// document's server is "/"); an Authorize button appears once the document declares a
// security scheme, and the token is kept across reloads.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No request to the public validator: the page works offline.
    validatorUrl: null,
    persistAuthorization: true,
    displayRequestDuration: true,
    showExtensions: true,
    showCommonExtensions: true,
    defaultModelsExpandDepth: 0,
  });
};
