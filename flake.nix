{
  description = "opm: the command-line tool of the Open Platform Model";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = nixpkgs.legacyPackages.${system};
        # cuelang.org/go and its dependencies, fetched once as a vendor tree
        # (the Nix sandbox has no network). Update vendorHash when
        # go-shim/go.sum changes: Nix prints the new hash on mismatch.
        shimVendor = (pkgs.buildGoModule {
          pname = "opm-go-shim";
          version = "0";
          src = ./go-shim;
          vendorHash = pkgs.lib.fakeHash;
        }).goModules;
        opm = pkgs': pkgs'.rustPlatform.buildRustPackage {
          pname = "opm";
          version = (builtins.fromTOML (builtins.readFile ./Cargo.toml)).package.version;
          src = ./.;
          cargoLock.lockFile = ./Cargo.lock;
          # bindgenHook sets LIBCLANG_PATH; go builds the c-archive in build.rs.
          nativeBuildInputs = [ pkgs.go pkgs'.rustPlatform.bindgenHook ];
          # build.rs switches to -mod=vendor when go-shim/vendor exists.
          preBuild = ''
            cp -r ${shimVendor} go-shim/vendor
            chmod -R u+w go-shim/vendor
          '';
          # The integration tests need a registry server and the cue CLI.
          doCheck = false;
          meta = {
            description = "CUE modules for the Open Platform Model: vet, render, publish, depend";
            license = pkgs.lib.licenses.asl20;
            mainProgram = "opm";
          };
        };
      in
      {
        # Linked against the system's glibc, as distributions prefer.
        packages.default = opm pkgs;
        # One static binary (glibc, crt-static), as `make build` makes it:
        # runs in an empty container. build.rs then links the Go runtime's
        # pthread and libm from the static C library.
        packages.static = opm pkgs.pkgsStatic;

        devShells.default = pkgs.mkShell {
          packages = [
            pkgs.cargo pkgs.rustc pkgs.clippy pkgs.rustfmt
            pkgs.go pkgs.cue
            pkgs.distribution  # docker-registry, for the integration tests
            pkgs.skopeo pkgs.apacheHttpd  # skopeo inspect, htpasswd
          ];
          LIBCLANG_PATH = "${pkgs.llvmPackages.libclang.lib}/lib";
        };
      });
}
