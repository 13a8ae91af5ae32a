//! gRPC server reflection, as `grpc.reflection.v1` and as `grpc.reflection.v1alpha` (which
//! Python's grpcio-reflection, Postman and older grpcurl speak), over exactly the services one
//! server serves: its MetaChat service, health and reflection, with the files they need.
//!
//! Our own rather than tonic-reflection's server (whose generated types we use): that one
//! lists every service of the registered descriptors, and ends the whole stream with
//! NOT_FOUND on an unknown symbol, where the protocol answers with an `error_response` and
//! keeps the stream open for the client's next question.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;

use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tonic_reflection::pb::{v1, v1alpha};

/// The names of the services answered by reflection besides the served one.
const SERVED_ALONGSIDE: [&str; 3] = [
    tonic_health::pb::health_server::SERVICE_NAME,
    v1::server_reflection_server::SERVICE_NAME,
    v1alpha::server_reflection_server::SERVICE_NAME,
];

/// Why reflection cannot be offered (a bug in the compiled-in descriptors).
#[derive(Debug, thiserror::Error)]
pub(super) enum ReflectionError {
    #[error("a descriptor set does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("no descriptor declares the service {0}")]
    MissingService(String),
    #[error("the file {0} is imported but not in the descriptor sets")]
    MissingFile(String),
}

/// The reflection service of one server.
#[derive(Clone)]
pub(super) struct Reflection(Arc<Index>);

impl Reflection {
    /// Reflection over `service` (from the MetaChat descriptors), health and reflection.
    pub(super) fn new(service: &str) -> Result<Self, ReflectionError> {
        let mut services: Vec<&str> = std::iter::once(service).chain(SERVED_ALONGSIDE).collect();
        services.dedup();
        Index::new(
            &[
                metachat_proto::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                v1::FILE_DESCRIPTOR_SET,
                v1alpha::FILE_DESCRIPTOR_SET,
            ],
            &services,
        )
        .map(|index| Self(Arc::new(index)))
    }

    pub(super) fn v1(&self) -> v1::server_reflection_server::ServerReflectionServer<Self> {
        v1::server_reflection_server::ServerReflectionServer::new(self.clone())
    }

    pub(super) fn v1alpha(
        &self,
    ) -> v1alpha::server_reflection_server::ServerReflectionServer<Self> {
        v1alpha::server_reflection_server::ServerReflectionServer::new(self.clone())
    }
}

/// The files a server describes, and which file declares each symbol.
#[derive(Debug)]
struct Index {
    services: Vec<String>,
    /// Encoded `FileDescriptorProto`s and their imports, by file name.
    files: HashMap<String, (Vec<u8>, Vec<String>)>,
    /// Fully-qualified symbol (message, field, enum, enum value, service, method) -> file.
    symbols: HashMap<String, String>,
    /// The message types among the symbols.
    messages: HashSet<String>,
}

/// A reflection question, whichever version asked it.
#[derive(Debug)]
enum Question {
    File(String),
    Symbol(String),
    Extension,
    ExtensionNumbers(String),
    ListServices,
    Empty,
}

/// A reflection answer, whichever version will carry it.
#[derive(Debug, PartialEq)]
enum Answer {
    Files(Vec<Vec<u8>>),
    Services(Vec<String>),
    ExtensionNumbers(String),
    Error(tonic::Code, String),
}

impl Index {
    /// The index of `services`: the files declaring them and everything those import.
    fn new(descriptor_sets: &[&[u8]], services: &[&str]) -> Result<Self, ReflectionError> {
        let mut all: HashMap<String, FileDescriptorProto> = HashMap::new();
        for set in descriptor_sets {
            for file in FileDescriptorSet::decode(*set)?.file {
                let name = file.name().to_owned();
                all.entry(name).or_insert(file);
            }
        }
        let mut index = Index {
            services: Vec::new(),
            files: HashMap::new(),
            symbols: HashMap::new(),
            messages: HashSet::new(),
        };
        let mut pending = Vec::new();
        for service in services {
            let declaring = all.values().find(|file| {
                file.service
                    .iter()
                    .any(|s| qualify(file.package(), s.name()) == *service)
            });
            let file =
                declaring.ok_or_else(|| ReflectionError::MissingService(service.to_string()))?;
            pending.push(file.name().to_owned());
            index.services.push(service.to_string());
        }
        while let Some(name) = pending.pop() {
            if index.files.contains_key(&name) {
                continue;
            }
            let file = all
                .get(&name)
                .ok_or_else(|| ReflectionError::MissingFile(name.clone()))?;
            pending.extend(file.dependency.iter().cloned());
            index.add_symbols(file);
            index
                .files
                .insert(name, (file.encode_to_vec(), file.dependency.clone()));
        }
        Ok(index)
    }

    fn add_symbols(&mut self, file: &FileDescriptorProto) {
        let name = file.name();
        let package = file.package();
        for message in &file.message_type {
            self.add_message(name, package, message);
        }
        for enumeration in &file.enum_type {
            self.add_enum(name, package, enumeration);
        }
        for service in &file.service {
            let service_name = qualify(package, service.name());
            for method in &service.method {
                self.add(name, qualify(&service_name, method.name()));
            }
            self.add(name, service_name);
        }
    }

    fn add_message(&mut self, file: &str, scope: &str, message: &DescriptorProto) {
        let message_name = qualify(scope, message.name());
        for nested in &message.nested_type {
            self.add_message(file, &message_name, nested);
        }
        for enumeration in &message.enum_type {
            self.add_enum(file, &message_name, enumeration);
        }
        for field in &message.field {
            self.add(file, qualify(&message_name, field.name()));
        }
        for oneof in &message.oneof_decl {
            self.add(file, qualify(&message_name, oneof.name()));
        }
        self.messages.insert(message_name.clone());
        self.add(file, message_name);
    }

    fn add_enum(&mut self, file: &str, scope: &str, enumeration: &EnumDescriptorProto) {
        // Enum values are scoped beside their enum, as in protobuf itself.
        for value in &enumeration.value {
            self.add(file, qualify(scope, value.name()));
        }
        self.add(file, qualify(scope, enumeration.name()));
    }

    fn add(&mut self, file: &str, symbol: String) {
        self.symbols.insert(symbol, file.to_owned());
    }

    /// The answer to `question`; `sent` holds the files this stream already sent, which are
    /// not sent again as imports.
    fn answer(&self, question: Question, sent: &mut HashSet<String>) -> Answer {
        match question {
            Question::File(name) if self.files.contains_key(&name) => {
                self.file_and_imports(&name, sent)
            }
            Question::File(name) => {
                Answer::Error(tonic::Code::NotFound, format!("file {name:?} not found"))
            }
            Question::Symbol(symbol) => match self.symbols.get(symbol.trim_start_matches('.')) {
                Some(file) => self.file_and_imports(file, sent),
                None => Answer::Error(
                    tonic::Code::NotFound,
                    format!("symbol {symbol:?} not found"),
                ),
            },
            Question::Extension => Answer::Error(
                tonic::Code::NotFound,
                "no extensions are declared".to_owned(),
            ),
            // No message declares extension ranges; an empty list, as clients (grpcurl) expect.
            Question::ExtensionNumbers(message)
                if self.messages.contains(message.trim_start_matches('.')) =>
            {
                Answer::ExtensionNumbers(message)
            }
            Question::ExtensionNumbers(message) => Answer::Error(
                tonic::Code::NotFound,
                format!("message type {message:?} not found"),
            ),
            Question::ListServices => Answer::Services(self.services.clone()),
            Question::Empty => Answer::Error(
                tonic::Code::InvalidArgument,
                "the request asks nothing".to_owned(),
            ),
        }
    }

    /// The file `name` first, then every file it imports, directly or not, that this stream
    /// has not sent yet: a client can then build the descriptors without asking again.
    fn file_and_imports(&self, name: &str, sent: &mut HashSet<String>) -> Answer {
        let mut files = Vec::new();
        let mut pending = vec![name.to_owned()];
        sent.insert(name.to_owned());
        while let Some(next) = pending.pop() {
            let Some((encoded, imports)) = self.files.get(&next) else {
                continue;
            };
            files.push(encoded.clone());
            for import in imports {
                if sent.insert(import.clone()) {
                    pending.push(import.clone());
                }
            }
        }
        Answer::Files(files)
    }
}

/// `name` in `scope` (a package or an enclosing message).
fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

type AnswerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The same service for each protocol version: the two packages have identical messages.
macro_rules! reflection_version {
    ($version:ident) => {
        #[tonic::async_trait]
        impl $version::server_reflection_server::ServerReflection for Reflection {
            type ServerReflectionInfoStream = AnswerStream<$version::ServerReflectionResponse>;

            async fn server_reflection_info(
                &self,
                request: Request<Streaming<$version::ServerReflectionRequest>>,
            ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
                use $version::server_reflection_request::MessageRequest;
                use $version::server_reflection_response::MessageResponse;

                let index = self.0.clone();
                let mut sent = HashSet::new();
                let answers = request.into_inner().map(move |request| {
                    let request = request?;
                    let question = match &request.message_request {
                        Some(MessageRequest::FileByFilename(name)) => Question::File(name.clone()),
                        Some(MessageRequest::FileContainingSymbol(symbol)) => {
                            Question::Symbol(symbol.clone())
                        }
                        Some(MessageRequest::FileContainingExtension(_)) => Question::Extension,
                        Some(MessageRequest::AllExtensionNumbersOfType(message)) => {
                            Question::ExtensionNumbers(message.clone())
                        }
                        Some(MessageRequest::ListServices(_)) => Question::ListServices,
                        None => Question::Empty,
                    };
                    let response = match index.answer(question, &mut sent) {
                        Answer::Files(file_descriptor_proto) => {
                            MessageResponse::FileDescriptorResponse(
                                $version::FileDescriptorResponse {
                                    file_descriptor_proto,
                                },
                            )
                        }
                        Answer::Services(names) => {
                            MessageResponse::ListServicesResponse($version::ListServiceResponse {
                                service: names
                                    .into_iter()
                                    .map(|name| $version::ServiceResponse { name })
                                    .collect(),
                            })
                        }
                        Answer::ExtensionNumbers(base_type_name) => {
                            MessageResponse::AllExtensionNumbersResponse(
                                $version::ExtensionNumberResponse {
                                    base_type_name,
                                    extension_number: Vec::new(),
                                },
                            )
                        }
                        Answer::Error(code, error_message) => {
                            MessageResponse::ErrorResponse($version::ErrorResponse {
                                error_code: code as i32,
                                error_message,
                            })
                        }
                    };
                    Ok($version::ServerReflectionResponse {
                        valid_host: request.host.clone(),
                        original_request: Some(request),
                        message_response: Some(response),
                    })
                });
                Ok(Response::new(Box::pin(answers)))
            }
        }
    };
}

reflection_version!(v1);
reflection_version!(v1alpha);

#[cfg(test)]
mod tests {
    use super::*;

    const USER_SERVICE: &str = "metachat.user.v1.UserService";
    const DIARY_SERVICE: &str = "metachat.diary.v1.DiaryService";

    fn index(service: &str) -> Index {
        Reflection::new(service)
            .map(|r| Arc::try_unwrap(r.0).expect("sole owner"))
            .expect("the compiled-in descriptors index")
    }

    fn names(answer: Answer) -> Vec<String> {
        match answer {
            Answer::Files(files) => files
                .iter()
                .map(|f| {
                    FileDescriptorProto::decode(f.as_slice())
                        .expect("a file descriptor")
                        .name()
                        .to_owned()
                })
                .collect(),
            other => panic!("expected files, got {other:?}"),
        }
    }

    #[test]
    fn lists_only_the_served_service_health_and_reflection() {
        let user = index(USER_SERVICE);
        let mut sent = HashSet::new();
        let Answer::Services(mut listed) = user.answer(Question::ListServices, &mut sent) else {
            panic!("expected a service list");
        };
        listed.sort();
        assert_eq!(
            listed,
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
                USER_SERVICE,
            ]
        );
        // The other service's files and symbols are not described either.
        assert!(matches!(
            user.answer(Question::Symbol(DIARY_SERVICE.into()), &mut sent),
            Answer::Error(tonic::Code::NotFound, _)
        ));
        assert!(matches!(
            user.answer(Question::File("metachat/diary.proto".into()), &mut sent),
            Answer::Error(tonic::Code::NotFound, _)
        ));
        let diary = index(DIARY_SERVICE);
        assert!(diary.services.iter().any(|s| s == DIARY_SERVICE));
        assert!(!diary.services.iter().any(|s| s == USER_SERVICE));
    }

    #[test]
    fn a_symbol_comes_with_its_file_and_imports_once_per_stream() {
        let user = index(USER_SERVICE);
        let mut sent = HashSet::new();
        let first = names(user.answer(
            Question::Symbol(format!("{USER_SERVICE}.GetUser")),
            &mut sent,
        ));
        assert_eq!(first[0], "metachat/user.proto");
        assert!(
            first.iter().any(|f| f == "metachat/common.proto"),
            "{first:?}"
        );
        assert!(
            first.iter().any(|f| f == "google/protobuf/timestamp.proto"),
            "{first:?}"
        );
        // Asked again on the same stream: the file, without the imports already sent.
        let again = names(user.answer(
            Question::Symbol("metachat.user.v1.GetUserRequest".into()),
            &mut sent,
        ));
        assert_eq!(again, ["metachat/user.proto"]);
        // Every symbol kind resolves.
        for symbol in [
            "metachat.user.v1.GetUserRequest.id",
            ".metachat.user.v1.User",
            "grpc.health.v1.Health.Check",
            "grpc.health.v1.HealthCheckResponse.ServingStatus",
            "grpc.health.v1.HealthCheckResponse.SERVING",
            "grpc.reflection.v1alpha.ServerReflection",
        ] {
            assert!(
                matches!(
                    user.answer(Question::Symbol(symbol.into()), &mut sent),
                    Answer::Files(_)
                ),
                "{symbol}"
            );
        }
    }

    #[test]
    fn unknown_questions_get_error_answers_not_a_failed_stream() {
        let user = index(USER_SERVICE);
        let mut sent = HashSet::new();
        for question in [
            Question::Symbol("no.such.Symbol".into()),
            Question::File("no/such.proto".into()),
            Question::Extension,
            Question::ExtensionNumbers("no.such.Message".into()),
        ] {
            assert!(matches!(
                user.answer(question, &mut sent),
                Answer::Error(tonic::Code::NotFound, _)
            ));
        }
        assert!(matches!(
            user.answer(Question::Empty, &mut sent),
            Answer::Error(tonic::Code::InvalidArgument, _)
        ));
        assert_eq!(
            user.answer(
                Question::ExtensionNumbers("metachat.user.v1.User".into()),
                &mut sent
            ),
            Answer::ExtensionNumbers("metachat.user.v1.User".into())
        );
    }
}
